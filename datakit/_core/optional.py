"""Optional dependencies: curation (ingest, stats, compose, export) runs without PyTorch;
training, audits, studies and label-issue search need it (``pip install 'datakit[train]'``)."""
from __future__ import annotations

from datakit.errors import MissingDependency

TRAIN_EXTRA = "pip install 'datakit[train]'"


def require_torch(what: str) -> None:
    """Raise :class:`MissingDependency` naming ``what`` when PyTorch is not installed."""
    try:
        import torch  # noqa: F401
    except ImportError as e:
        raise MissingDependency(f"{what} needs PyTorch: {TRAIN_EXTRA}") from e
