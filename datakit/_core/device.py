"""Device choice: one rule for training, the judge, the audit, label issues and sampling."""
from __future__ import annotations

from typing import TYPE_CHECKING

from datakit.errors import DatakitError

if TYPE_CHECKING:
    import torch


def resolve_device(name: str, local_rank: int = 0) -> "torch.device":
    """The torch device ``name`` means here.

    ``auto`` is CUDA when PyTorch sees a GPU, else the CPU; ``cuda`` is this process's GPU
    (``local_rank`` under DDP), ``cuda:N`` that GPU, ``cpu`` the CPU. A GPU asked for on a
    machine without one, or a name torch does not know, is an error saying what to use.
    """
    import torch  # optional dependency: curation never resolves a device

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise DatakitError(f"Unknown device {name!r}; use auto, cpu or cuda[:N].") from e
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DatakitError(f"--device {name} was asked for but PyTorch sees no CUDA GPU; "
                               "use --device cpu or --device auto.")
        return torch.device("cuda", local_rank if device.index is None else device.index)
    return device
