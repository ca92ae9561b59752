"""Typed errors. The library raises these; the CLI turns them into ``Error: ...`` lines.

Every message is a sentence a user can act on: what went wrong, where, what to do next.
"""


class DatakitError(Exception):
    """Base class of every error datakit raises on purpose."""


class FormatError(DatakitError):
    """A file is not in the format its source expects (bad magic, truncated, corrupt, wrong shape)."""


class SourceNotFound(DatakitError):
    """The files a source needs are not where the user pointed."""


class UnsafeArchive(DatakitError):
    """An archive member escapes the archive root, is a link, or decompresses to something absurd."""


class ChecksumMismatch(DatakitError):
    """A downloaded or recorded file does not have the checksum it should."""


class ManifestError(DatakitError):
    """A manifest is missing, incomplete, or inconsistent with its pixel store or sidecar."""


class UnknownName(DatakitError):
    """A name (source, subset, class, model, metric) is not one datakit knows."""


class CompositionError(DatakitError):
    """A compose request cannot be satisfied by the manifests given."""


class TrainingError(DatakitError):
    """Training cannot start or cannot continue (bad options, divergence, unusable checkpoint)."""


class RunDirError(DatakitError):
    """A run directory is missing files the audit needs, or holds inconsistent ones."""


class ReportError(DatakitError):
    """A report page cannot be written (its audits are kept)."""


class StudyError(DatakitError):
    """An audit study file is malformed or names things that do not exist."""


class BadName(DatakitError):
    """A name (study, arm, ingest, manifest) cannot be used as a file or folder name."""


class OutsideFolder(DatakitError):
    """A path derived from a name would leave the folder it belongs to."""


class MissingDependency(DatakitError):
    """An optional dependency (PyTorch, datasets) that this command needs is not installed."""
