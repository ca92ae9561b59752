"""datakit: measure how the make-up of a character-image training set shapes what a GAN produces.

The flow is ingest -> compose -> train -> audit; each step is a library function here and a
``datakit`` sub-command of the same name. Folders are the flow: ``sources/`` (ingest),
``manifest/``, ``composition/`` (compose), ``training/`` (train), ``judge/``, ``audit/``,
``report/``, ``study/``, ``cli/``; shared leaves in ``_core/``.

Training, audits and studies need PyTorch; their names load it on first use, so
``import datakit`` and curation (ingest, compose, read_manifest) work without it.
"""
from datakit._core.version import __version__
from datakit.composition import ComposeConfig, compose
from datakit.errors import (BadName, ChecksumMismatch, CompositionError, DatakitError, FormatError,
                            ManifestError, MissingDependency, OutsideFolder, ReportError, RunDirError,
                            SourceNotFound, StudyError, TrainingError, UnknownName, UnsafeArchive)
from datakit.manifest import Manifest, read_manifest, write_manifest
from datakit.sources.registry import ingest
from datakit.training.config import TrainConfig

#: Public names that need PyTorch, and the module each is imported from on first use.
_NEED_TORCH = {"train": "datakit.training.loop", "audit_run": "datakit.audit.run",
               "AuditConfig": "datakit.audit.config", "run_study": "datakit.study.runner",
               "load_study": "datakit.study.spec", "register_check": "datakit.audit.registry",
               "unregister_check": "datakit.audit.registry"}

__all__ = ["__version__", "ingest", "compose", "ComposeConfig", "train", "TrainConfig", "audit_run",
           "AuditConfig", "run_study", "load_study", "register_check", "unregister_check",
           "Manifest", "read_manifest", "write_manifest",
           "DatakitError", "FormatError", "SourceNotFound", "UnsafeArchive", "ChecksumMismatch",
           "ManifestError", "UnknownName", "CompositionError", "TrainingError", "RunDirError",
           "ReportError", "StudyError", "BadName", "OutsideFolder", "MissingDependency"]


def __getattr__(name: str):
    if name in _NEED_TORCH:
        import importlib
        return getattr(importlib.import_module(_NEED_TORCH[name]), name)
    raise AttributeError(f"module 'datakit' has no attribute {name!r}")
