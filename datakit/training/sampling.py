"""Sampling from a trained generator: ``generated.npz`` at the end of a run, and ``datakit sample``."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import torch

from datakit._core.device import resolve_device
from datakit.errors import RunDirError, TrainingError
from datakit.training.checkpoint import load_checkpoint
from datakit.training.models import build_models
from datakit.training.rundir import RunDir, write_npz, write_png

GENERATE_BATCH = 500


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Generator output N×C×H×W in [-1, 1] -> N×H×W×C uint8 (the pixel store's layout)."""
    x = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


@torch.no_grad()
def generate_images(g_net: torch.nn.Module, labels: torch.Tensor, z_dim: int,
                    device: torch.device, *, seed: int, autocast=None) -> np.ndarray:
    """Images for the given labels (-1: unconditional), in eval mode, in batches.

    Returns N×H×W×C uint8. The noise comes from its own generator seeded with ``seed``,
    so the same call gives the same images.
    """
    g = torch.Generator().manual_seed(seed)
    was_training = g_net.training
    g_net.eval()
    out = []
    for start in range(0, len(labels), GENERATE_BATCH):
        y = labels[start:start + GENERATE_BATCH].clamp(min=0).to(device)
        z = torch.randn(len(y), z_dim, generator=g).to(device)
        with autocast or contextlib.nullcontext():
            out.append(to_uint8(g_net(z, y)))
    g_net.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 1, 1, 1), np.uint8)


def load_generator(run_dir: str | os.PathLike, device: torch.device | str = "cpu"
                   ) -> tuple[torch.nn.Module, dict]:
    """The run's generator (EMA weights when the run kept them) and its config.json."""
    run = RunDir(run_dir)
    if not run.config_path.exists():
        raise RunDirError(f"{run.config_path} not found: {run.root} is not a run directory "
                          "written by `datakit train`.")
    cfg = run.read_config()
    ckpt = load_checkpoint(run.checkpoint_path)
    g_net, _ = build_models(cfg["model"], z_dim=cfg["z_dim"], channels=cfg["channels"],
                            image_size=cfg["image_size"], width=cfg["width"],
                            num_classes=cfg["num_classes"])
    g_net.load_state_dict(ckpt["ema"] or ckpt["generator"])
    return g_net.to(device).eval(), cfg


#: The most images one call draws: all of them are held in memory (and a PNG grid of them).
MAX_SAMPLES = 1_000_000


def sample(run_dir: str | os.PathLike, n: int, class_name: str | None = None,
           out: str | os.PathLike | None = None, seed: int = 0, device: str = "auto") -> Path:
    """Write ``n`` new samples from a run's last checkpoint.

    Args:
        run_dir: a run directory written by :func:`datakit.training.train`.
        n: number of images. For a conditional model without ``class_name`` the labels cycle
            through the classes (equal numbers, up to one).
        class_name: only this class (a name from config.json's ``class_names``).
        out: ``.npz`` (``images``, ``labels``) or ``.png`` (a grid); default
            ``RUN_DIR/samples/sample_<class|all>_<n>.npz``.
        seed: seed of the noise.
        device: ``auto``, ``cpu`` or ``cuda``.
    Returns:
        The path written.
    """

    if n < 1:
        raise TrainingError(f"--n must be at least 1, got {n}.")
    if n > MAX_SAMPLES:
        raise TrainingError(f"--n {n:,} is more than the {MAX_SAMPLES:,} images one `datakit "
                            "sample` draws (they are held in memory); draw several batches "
                            "with different --seed values.")
    dev = resolve_device(device)
    g_net, cfg = load_generator(run_dir, dev)
    names = list(cfg["class_names"])
    if class_name is not None:
        if not cfg["conditional"]:
            raise TrainingError(f"Run {run_dir} trained an unconditional {cfg['model']} model; "
                                "it cannot sample a chosen class. Leave out --class.")
        if class_name not in names:
            raise TrainingError(f"Unknown class {class_name!r} for run {run_dir}; its classes "
                                f"are {' '.join(names)}.")
        labels = torch.full((n,), names.index(class_name), dtype=torch.int64)
    elif cfg["conditional"]:
        labels = torch.arange(n) % len(names)
    else:
        labels = torch.full((n,), -1, dtype=torch.int64)
    images = generate_images(g_net, labels, cfg["z_dim"], dev, seed=seed)
    if out is None:
        tag = class_name if class_name is not None else "all"
        out = RunDir(run_dir).samples_dir / f"sample_{tag}_{n}.npz"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".png":
        return write_png(out, images)
    if out.suffix.lower() != ".npz":
        raise TrainingError(f"--out {out} must end in .npz or .png.")
    return write_npz(out, images, labels.numpy())
