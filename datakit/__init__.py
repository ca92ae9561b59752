"""datakit: measure how the make-up of a character-image training set shapes what a GAN produces.

The flow is ingest -> compose -> train -> audit; each step is a library function here and a
``datakit`` sub-command of the same name. Folders are the flow: ``sources/`` (ingest),
``manifest/``, ``composition/`` (compose), ``training/`` (train), ``judge/``, ``audit/``,
``report/``, ``study/``, ``cli/``; shared leaves in ``_core/``.

Training, audits and studies need PyTorch; their names load it on first use, so
``import datakit`` and curation (ingest, compose, read_manifest) work without it.
"""
from datakit._core.version import __version__
from datakit.composition import ComposeConfig, compose, rebuild
from datakit.errors import (BadName, ChecksumMismatch, CompositionError, DatakitError, FormatError,
                            ManifestError, MissingDependency, OutsideFolder, ReportError, RunDirError,
                            SourceNotFound, StudyError, TrainingError, UnknownName, UnsafeArchive)
from datakit.manifest import Manifest, read_manifest, write_manifest
from datakit.sources.registry import ingest
from datakit.training.config import TrainConfig

#: Public names imported on first use, and the module of each: those that need PyTorch
#: (:data:`_NEED_TORCH`), and those only heavier to import than ``import datakit`` should be.
#: Each command of the CLI has its function here (docs/cli.md, "The same in Python").
_LAZY = {"train": "datakit.training.loop", "sample": "datakit.training.sampling",
         "audit_run": "datakit.audit.run", "AuditConfig": "datakit.audit.config",
         "audit_and_report": "datakit.report.html",
         "run_study": "datakit.study.runner", "load_study": "datakit.study.spec",
         "run_demo": "datakit.demo", "DemoConfig": "datakit.demo",
         "register_check": "datakit.audit.registry", "unregister_check": "datakit.audit.registry",
         "find_label_issues": "datakit.label_issues", "LabelIssuesConfig": "datakit.label_issues",
         "export": "datakit.manifest.export", "verify_manifest": "datakit.manifest.verify",
         "manifest_stats": "datakit.manifest.stats", "get_data_home": "datakit.sources.home"}

_NEED_TORCH = {"train", "sample", "audit_run", "AuditConfig", "audit_and_report", "run_study",
               "load_study", "run_demo", "DemoConfig", "register_check", "unregister_check"}

__all__ = ["__version__", "ingest", "compose", "rebuild", "ComposeConfig", "train", "TrainConfig",
           "sample", "audit_run", "AuditConfig", "audit_and_report", "run_study", "load_study",
           "run_demo", "DemoConfig", "register_check", "unregister_check", "find_label_issues",
           "LabelIssuesConfig", "export", "verify_manifest", "manifest_stats", "get_data_home",
           "Manifest", "read_manifest", "write_manifest",
           "DatakitError", "FormatError", "SourceNotFound", "UnsafeArchive", "ChecksumMismatch",
           "ManifestError", "UnknownName", "CompositionError", "TrainingError", "RunDirError",
           "ReportError", "StudyError", "BadName", "OutsideFolder", "MissingDependency"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        if name in _NEED_TORCH:
            from datakit._core.optional import require_torch
            require_torch(f"datakit.{name}")
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'datakit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
