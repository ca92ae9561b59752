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


def skip_broken_cupti_probe() -> None:
    """Keep torch from printing a traceback on a process's first optimizer step.

    Every ``record_function`` (optimizers enter one per step) first probes for torch's optional
    CUPTI monitor (``torch.autograd.profiler._maybe_cupti_monitor``); where that import fails
    with an ImportError other than "module not found" (``cannot import name '_cupti_monitor'``),
    torch logs the whole traceback as a warning, to stderr. datakit never profiles: this makes
    the same probe quietly and, when it fails, marks it done with no monitor, which is what
    torch itself does when the module is simply absent. Call it before training a network.
    """
    import torch.autograd.profiler as autograd_profiler

    if getattr(autograd_profiler, "_cupti_monitor_checked", True):
        return  # probed already, or a torch without the probe
    try:
        from torch.profiler import _cupti_monitor  # noqa: F401
    except Exception:
        autograd_profiler._cupti_monitor_checked = True
