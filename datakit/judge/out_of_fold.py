"""The judge network trained for out-of-fold class probabilities (label-issue search).

The audit's judge (:class:`datakit.judge.network.Judge`) shifts each *batch* by a few
pixels and is tuned for its feature space; its defaults are part of the audit's cache
keys. Label-issue search needs something else from the same network: probabilities that
are sure where the label is right *and* where it is wrong, so that confident learning's
per-class thresholds separate the two. Trained on a few thousand images, the batch-shifted
judge is under-confident exactly where it disagrees with a label. Jittering each *image*
on its own (a small random rotation, scale and shift) is the classic cure for accuracy on
handwritten digits; :func:`train_fold_net` does that and nothing else differently.

Measured on MNIST's 15 confirmed test-set errors, accuracy is not what confident learning
needs, though: jittered networks are the better classifiers but stay unsure on exactly the
digits whose label is wrong, and more epochs or more folds did not change that. Networks
trained on the plain images for longer (``rotation = shift = scale = 0``, epochs from
:func:`plain_epochs`) are sure of what they read there too, and more of those rows pass
their class threshold: the label-issue search's default (``augment="none"``).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from datakit._core.optional import skip_broken_cupti_probe
from datakit._core.progress import progress
from datakit.judge.features import to_judge_input
from datakit.judge.network import JudgeNet, auto_epochs


#: Image passes of a fold network trained on the plain images when no epochs are set: 20
#: epochs on a 7,500-image fold (MNIST's test split in 4 folds), where 11 (the judge's rule)
#: left the networks less sure of the rows they read against their label.
PLAIN_IMAGE_PASSES = 150_000


def plain_epochs(images: int) -> int:
    """Epochs of an un-augmented fold network when none are set: about 150,000 image passes, 2 to 30."""
    return int(np.clip(np.ceil(PLAIN_IMAGE_PASSES / max(1, images)), 2, 30))


def affine_matrices(angles: torch.Tensor, zooms: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """N×2×3 sampling matrices for :func:`torch.nn.functional.affine_grid`.

    Output pixel ``p`` (in grid units, -1..1 across the image) reads the input at
    ``R(angle) p / zoom + offset``: the glyph turns by ``-angle``, grows by ``zoom`` and
    moves by ``-offset`` (a positive x offset moves it left).

    Args:
        angles: N angles in radians.
        zooms: N zoom factors (>1 draws the glyph larger).
        offsets: N×2 (x, y) offsets in grid units (2 / width per pixel).
    """
    cos, sin = torch.cos(angles) / zooms, torch.sin(angles) / zooms
    return torch.stack([torch.stack([cos, -sin, offsets[:, 0]], 1),
                        torch.stack([sin, cos, offsets[:, 1]], 1)], 1)


def jitter(x: torch.Tensor, *, rotation: float, shift: float, scale: float,
           generator: torch.Generator) -> torch.Tensor:
    """Each image of N×C×H×W ``x`` (in [-1, 1]) rotated, zoomed and shifted at random.

    Args:
        rotation: largest rotation in degrees (uniform in ±rotation).
        shift: largest shift in pixels of the H×W input, per axis (uniform).
        scale: largest relative zoom (uniform in 1 ± scale).
        generator: the seeded CPU generator every draw comes from.
    """
    n, dev = len(x), x.device
    angles = (torch.rand(n, generator=generator) * 2 - 1) * rotation * math.pi / 180
    zooms = 1 + (torch.rand(n, generator=generator) * 2 - 1) * scale
    offsets = (torch.rand(n, 2, generator=generator) * 2 - 1) * shift * 2 / x.shape[3]
    theta = affine_matrices(angles, zooms, offsets).to(dev)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # Sample on [0, 2] so the area uncovered by the move is background (-1), not grey.
    return F.grid_sample(x + 1, grid, align_corners=False, padding_mode="zeros") - 1


def train_fold_net(images: np.ndarray, labels: np.ndarray, num_classes: int, *, width: int,
                   epochs: int, rotation: float, shift: float, scale: float, seed: int,
                   device: torch.device, lr: float = 2e-3, batch_size: int = 128) -> JudgeNet:
    """A :class:`JudgeNet` trained on uint8 N×H×W×C ``images`` with per-image jitter.

    ``epochs=0`` is the judge's own rule (about 80,000 image passes, 2..15 epochs).
    Adam with a one-cycle schedule, as the judge. ``rotation = shift = scale = 0`` trains on
    the plain images (no jitter drawn).
    """
    skip_broken_cupti_probe()  # else torch prints a traceback at the first optimizer step
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    channels = int(images.shape[-1])
    # Channels-last: faster steps on the CPU (see Judge.fit); nothing trained here is cached.
    net = JudgeNet(channels, num_classes, 1, width=width).to(device, memory_format=torch.channels_last)
    x_all = torch.cat([to_judge_input(images[i:i + 4096], channels, device)
                       for i in range(0, len(images), 4096)])
    y_all = torch.tensor(np.asarray(labels, dtype=np.int64), device=device)
    epochs = epochs or auto_epochs(len(x_all))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    steps = epochs * max(1, -(-len(x_all) // batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    jittered = bool(rotation or shift or scale)
    net.train()
    bar = progress(total=steps, desc="judge training", unit="step")
    for _ in range(epochs):
        perm = torch.randperm(len(x_all), generator=gen).to(device)
        for i in range(0, len(perm), batch_size):
            idx = perm[i:i + batch_size]
            bar.update(1)
            if len(idx) < 2:  # BatchNorm needs two samples; keep the schedule's step count
                sched.step()
                continue
            # 1) every image gets its own small rotation, zoom and shift (or none at all)
            x = x_all[idx]
            if jittered:
                x = jitter(x, rotation=rotation, shift=shift, scale=scale, generator=gen)
            x = x.contiguous(memory_format=torch.channels_last)
            # 2) the class loss only: the fold net has no domain head
            loss = F.cross_entropy(net(x)[1], y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    bar.close()
    return net.eval()


@torch.no_grad()
def class_logits(net: JudgeNet, images: np.ndarray, device: torch.device,
                 batch_size: int = 1024) -> np.ndarray:
    """N×K class logits of uint8 ``images`` (float64)."""
    out = [net(to_judge_input(np.asarray(images[i:i + batch_size]), net.channels, device))[1]
           for i in range(0, len(images), batch_size)]
    return torch.cat(out).double().cpu().numpy() if out else np.zeros((0, net.num_classes))
