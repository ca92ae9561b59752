"""Checkpoints: state dicts only, written atomically, loaded with ``weights_only=True``.

A checkpoint holds everything a resumed run needs to continue exactly where it stopped:
network and optimiser state dicts, the EMA generator, the step, and the random-number
states (the batch/noise generator of every process and PyTorch's global state). It is
written to a temporary file in the same folder, flushed to disk, then renamed over
``last.pt``, so a run killed at any moment leaves either the old or the new checkpoint.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from datakit._core.atomic import temp_path
from datakit.errors import TrainingError


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` (tensors, numbers, strings, lists and dicts of them) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with temp_path(path, fsync=True) as tmp, open(tmp, "wb") as f:
        torch.save(state, f)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu"
                    ) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (no pickled code is executed)."""
    path = Path(path)
    if not path.exists():
        raise TrainingError(f"Checkpoint {path} does not exist; train the run first "
                            "(`datakit train MANIFEST --out RUN_DIR`).")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for a truncated or foreign file
        raise TrainingError(f"Checkpoint {path} cannot be read ({e}). Delete it and train "
                            "again, or restore it from a copy.") from e
