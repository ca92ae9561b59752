"""The run directory: config.json, metrics.csv, sample grids, training.gif, generated.npz.

Its layout is the contract with the audit (see DESIGN.md). Every file is written atomically
(:mod:`datakit._core.atomic`), and only by rank 0. ``.datakit-run`` marks a folder datakit made,
so that a study may replace it (and nothing else).
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from datakit._core.atomic import atomic_write_bytes
from datakit.report.inline import image_grid

METRICS_COLUMNS = ["step", "epoch", "loss_d", "loss_g", "d_real", "d_fake", "acc_real",
                   "acc_fake", "acc_aux", "images_per_s", "probe_label_fidelity", "probe_fd"]
GRID_COLUMNS = 8  # images per class row in the sample grids
GIF_FRAME_MS = 250
#: Written into every run folder datakit creates; only such folders may be replaced by a study.
MARKER = ".datakit-run"


class RunDir:
    """Paths and writers of one run directory."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    config_path = property(lambda self: self.root / "config.json")
    metrics_path = property(lambda self: self.root / "metrics.csv")
    samples_dir = property(lambda self: self.root / "samples")
    gif_path = property(lambda self: self.root / "training.gif")
    checkpoint_path = property(lambda self: self.root / "checkpoints" / "last.pt")
    generated_path = property(lambda self: self.root / "generated.npz")

    marker_path = property(lambda self: self.root / MARKER)

    def create(self) -> None:
        """Make the folders a run writes into, and the marker that says datakit made them."""
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
        if not self.marker_path.exists():
            atomic_write_bytes(self.marker_path, b"This folder is a datakit training run.\n")

    # -- config ---------------------------------------------------------------------
    def write_config(self, config: dict[str, Any]) -> None:
        """Write config.json (the resolved settings plus manifest identity and versions)."""
        atomic_write_bytes(self.config_path,
                           (json.dumps(config, indent=2, default=str) + "\n").encode())

    def read_config(self) -> dict[str, Any]:
        """Read config.json."""
        return json.loads(self.config_path.read_text())

    # -- metrics --------------------------------------------------------------------
    def start_metrics(self, keep_up_to_step: int | None) -> None:
        """Begin metrics.csv: a fresh header, or (resuming) keep only rows up to a step.

        Rows logged after the checkpoint a run resumes from are dropped, because the resumed
        run logs those steps again.
        """
        rows: list[list[str]] = []
        if keep_up_to_step is not None and self.metrics_path.exists():
            with open(self.metrics_path, newline="") as f:
                reader = csv.reader(f)
                next(reader, None)
                rows = [r for r in reader if r and int(r[0]) <= keep_up_to_step]
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(METRICS_COLUMNS)
        writer.writerows(rows)
        atomic_write_bytes(self.metrics_path, buf.getvalue().encode())

    def append_metrics(self, row: dict[str, Any]) -> None:
        """Append one row (missing values, e.g. acc_aux for dcgan, are left empty)."""
        line = [_fmt(row.get(c)) for c in METRICS_COLUMNS]
        with open(self.metrics_path, "a", newline="") as f:
            csv.writer(f, lineterminator="\n").writerow(line)
            f.flush()

    # -- pictures -------------------------------------------------------------------
    def write_grid(self, step: int, images: np.ndarray, columns: int = GRID_COLUMNS) -> Path:
        """Save N×H×W×C uint8 images as samples/step_NNNNNN.png, ``columns`` per row."""
        grid = image_grid(images, ncols=columns)
        path = self.samples_dir / f"step_{step:06d}.png"
        atomic_write_bytes(path, _png_bytes(grid))
        return path

    def write_gif(self) -> Path | None:
        """Assemble training.gif from the sample grids in step order (None if there are none)."""
        frames = sorted(self.samples_dir.glob("step_*.png"))
        if not frames:
            return None
        images = []
        for p in frames:
            with Image.open(p) as im:
                images.append(im.convert("L" if im.mode == "L" else "RGB"))
        scale = max(1, 256 // max(images[0].size))
        if scale > 1:
            images = [im.resize((im.width * scale, im.height * scale), Image.NEAREST)
                      for im in images]
        buf = io.BytesIO()
        images[0].save(buf, format="GIF", save_all=True, append_images=images[1:],
                       duration=GIF_FRAME_MS, loop=0)
        atomic_write_bytes(self.gif_path, buf.getvalue())
        return self.gif_path

    def write_generated(self, images: np.ndarray, labels: np.ndarray,
                        path: Path | None = None) -> Path:
        """Save generated.npz: ``images`` N×H×W×C uint8 and ``labels`` int64 (-1: unconditional)."""
        return write_npz(path or self.generated_path, images, labels)


def write_npz(path: str | os.PathLike, images: np.ndarray, labels: np.ndarray) -> Path:
    """Atomically write an ``images``/``labels`` .npz file."""
    path = Path(path)
    buf = io.BytesIO()
    np.savez(buf, images=np.asarray(images, dtype=np.uint8),
             labels=np.asarray(labels, dtype=np.int64))
    atomic_write_bytes(path, buf.getvalue())
    return path


def write_png(path: str | os.PathLike, images: np.ndarray, columns: int = GRID_COLUMNS) -> Path:
    """Atomically write images as one PNG grid."""
    path = Path(path)
    atomic_write_bytes(path, _png_bytes(image_grid(images, ncols=columns)))
    return path


def _png_bytes(grid: np.ndarray) -> bytes:
    arr = grid[..., 0] if grid.shape[2] == 1 else grid
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def read_metrics(path: str | os.PathLike) -> list[dict[str, str]]:
    """metrics.csv as a list of dicts (strings), for tests and quick looks."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))

