"""DiffAugment (Zhao et al. 2020): differentiable colour, translation and cutout.

The same random transformations are applied to real and fake images before the
discriminator sees them, and gradients flow through them to the generator; this keeps the
discriminator from memorising a small training set without leaking the augmentations into
the generated images. Everything is vectorised over the batch, and every random draw uses
the caller's ``torch.Generator`` so that a resumed run repeats the same augmentations.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

POLICY = ("color", "translation", "cutout")


def diff_augment(x: torch.Tensor, generator: torch.Generator,
                 policy: tuple[str, ...] = POLICY) -> torch.Tensor:
    """Augment a batch N×C×H×W in [-1, 1]; each image gets its own random parameters."""
    for name in policy:
        for fn in _POLICIES[name]:
            x = fn(x, generator)
    return x


def _rand(x: torch.Tensor, g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=g, device=x.device, dtype=torch.float32).to(x.dtype)


def rand_brightness(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Add a per-image offset in [-0.5, 0.5)."""
    return x + (_rand(x, g, x.size(0), 1, 1, 1) - 0.5)


def rand_saturation(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Scale the distance to the per-pixel channel mean by [0, 2) (a no-op for grey images)."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_rand(x, g, x.size(0), 1, 1, 1) * 2) + mean


def rand_contrast(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Scale the distance to the image mean by [0.5, 1.5)."""
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (_rand(x, g, x.size(0), 1, 1, 1) + 0.5) + mean


def rand_translation(x: torch.Tensor, g: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its size, filling with zeros (mid-grey)."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sh, sh + 1, (n, 1, 1), generator=g, device=x.device)
    tx = torch.randint(-sw, sw + 1, (n, 1, 1), generator=g, device=x.device)
    gb, gy, gx = torch.meshgrid(torch.arange(n, device=x.device), torch.arange(h, device=x.device),
                                torch.arange(w, device=x.device), indexing="ij")
    gy = torch.clamp(gy + ty + 1, 0, h + 1)
    gx = torch.clamp(gx + tx + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])
    return padded.permute(0, 2, 3, 1)[gb, gy, gx].permute(0, 3, 1, 2)


def rand_cutout(x: torch.Tensor, g: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of ``ratio`` of the image size at a random place in each image."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=g, device=x.device)
    ox = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=g, device=x.device)
    gb, gy, gx = torch.meshgrid(torch.arange(n, device=x.device), torch.arange(ch, device=x.device),
                                torch.arange(cw, device=x.device), indexing="ij")
    gy = torch.clamp(gy + oy - ch // 2, 0, h - 1)
    gx = torch.clamp(gx + ox - cw // 2, 0, w - 1)
    mask = torch.ones(n, h, w, dtype=x.dtype, device=x.device)
    mask[gb, gy, gx] = 0
    return x * mask.unsqueeze(1)


_POLICIES = {
    "color": (rand_brightness, rand_saturation, rand_contrast),
    "translation": (rand_translation,),
    "cutout": (rand_cutout,),
}
