"""The store geometry of a composition: channels, antialiased bilinear resizing and ink polarity.

Resizing (:func:`resize_bilinear`) gives the same numbers as
``torch.nn.functional.interpolate(x, size, mode="bilinear", antialias=True,
align_corners=False)`` on uint8 (PyTorch's AVX2 kernel, a port of Pillow-SIMD), so curation
needs no torch and a compose made with torch gets the same pixels (tests/test_resample.py compares them bit for bit).

One pass per axis, width first: each output pixel is a triangle-filter average of the input
pixels within ``max(1, in/out)`` of its centre (the filter stretches when shrinking, which
is the antialiasing). Weights are normalised, then rounded to integers with the largest
precision that keeps them in int16; each pass rounds half up, shifts back and clips to uint8.
Pillow's ``Image.resize(BILINEAR)`` is the same filter with 22-bit weights, so it can differ
by 1 (rarely 2) in a few percent of pixels.
"""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from datakit.composition.config import ComposeConfig
from datakit.manifest.duplicates import (
    grey_images,
)
from datakit.manifest.model import Manifest


# ---------------------------------------------------------------------------------------
# geometry
# ---------------------------------------------------------------------------------------
def _to_channels(images: np.ndarray, channels: int) -> np.ndarray:
    c = images.shape[3]
    if c == channels:
        return images
    if channels == 3:
        return np.repeat(images[..., :1], 3, axis=3)
    # ITU-R 601-2 luma, as PIL's convert("L")
    grey = images[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)[..., None]


def _resize(images: np.ndarray, height: int, width: int, chunk: int = 4096) -> np.ndarray:
    """Antialiased resize that keeps the aspect ratio (pads with each image's border colour)."""
    n, h, w, c = images.shape
    if (h, w) == (height, width):
        return images
    scale = min(height / h, width / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    top, left = (height - nh) // 2, (width - nw) // 2
    out = np.empty((n, height, width, c), dtype=np.uint8)
    for s in range(0, n, chunk):
        small = resize_bilinear(images[s:s + chunk], nh, nw)
        if (nh, nw) != (height, width):
            border = np.concatenate([small[:, 0], small[:, -1], small[:, :, 0], small[:, :, -1]], axis=1)
            fill = np.median(border, axis=1).astype(np.uint8)  # (n, c)
            out[s:s + chunk] = fill[:, None, None, :]
        out[s:s + chunk, top:top + nh, left:left + nw] = small
    return out


def _polarity(images: np.ndarray, target: str) -> np.ndarray:
    """Invert images whose background (border) does not match the wanted polarity."""
    if target == "keep":
        return images
    grey = images[..., 0] if images.shape[3] == 1 else grey_images(images)
    border = np.concatenate([grey[:, 0], grey[:, -1], grey[:, :, 0], grey[:, :, -1]], axis=1)
    light_background = border.mean(axis=1, dtype=np.float32) > \
        grey.reshape(len(grey), -1).mean(axis=1, dtype=np.float32)
    flip = np.flatnonzero(~light_background if target == "dark-on-light" else light_background)
    out = np.array(images)
    out[flip] = 255 - out[flip]
    return out


def convert(images: np.ndarray, height: int, width: int, channels: int, polarity: str) -> np.ndarray:
    """Geometry and polarity of one parent's images, cheapest order first: drop channels
    before resizing, add them after (resizing and flipping three equal channels is waste)."""
    if images.shape[3] > channels:
        images = _to_channels(images, channels)
    return _to_channels(_polarity(_resize(images, height, width), polarity), channels)


def target_geometry(parents: Sequence[Manifest], used: set[int], cfg: ComposeConfig) -> tuple[int, int, int]:
    geoms = [parents[i].geometry for i in sorted(used)]
    h = int(cfg.image_size) if cfg.image_size else max(g.height for g in geoms)
    w = int(cfg.image_size) if cfg.image_size else max(g.width for g in geoms)
    c = int(cfg.channels) if cfg.channels else max(g.channels for g in geoms)
    return h, w, c


#: PyTorch's and Pillow-SIMD's cap on the weight precision (bits).
_MAX_PRECISION = 22


@functools.lru_cache(maxsize=64)
def _weights(n_in: int, n_out: int) -> tuple[np.ndarray, int]:
    """Integer weights (n_out × n_in, float64 holding exact integers) and their precision."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    inverse = 1.0 / support
    w = np.zeros((n_out, n_in))
    for i in range(n_out):
        centre = scale * (i + 0.5)
        lo = max(int(centre - support + 0.5), 0)
        hi = min(int(centre + support + 0.5), n_in)
        row = np.maximum(0.0, 1.0 - np.abs((np.arange(lo, hi) - centre + 0.5) * inverse))
        total = row.sum()
        w[i, lo:hi] = row / total if total else row
    precision = 0
    while precision < _MAX_PRECISION and int(0.5 + w.max() * (1 << (precision + 1))) < (1 << 15):
        precision += 1
    return np.trunc(0.5 + w * (1 << precision)), precision  # weights are >= 0: round half up


def _pass(images: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    """Resample one axis of an (n, h, w, c) uint8 batch."""
    if images.shape[axis] == n_out:
        return images
    w, precision = _weights(images.shape[axis], n_out)
    # Integer arithmetic in floating point: every partial sum is an integer below
    # 255 · (sum of a row's weights) + 2^(precision-1), exact in float32 under 2^24, else float64.
    exact32 = 255 * w.sum(axis=1).max() + (1 << precision) < 2 ** 24
    dtype = np.float32 if exact32 else np.float64
    lines = np.moveaxis(images, axis, -1)
    acc = lines.reshape(-1, lines.shape[-1]).astype(dtype) @ w.T.astype(dtype)  # one BLAS call
    acc += dtype(1 << (precision - 1))
    acc *= dtype(1.0 / (1 << precision))  # a power of two: exact
    out = np.clip(np.floor(acc, out=acc), 0, 255).astype(np.uint8)
    return np.moveaxis(out.reshape(*lines.shape[:-1], n_out), -1, axis)


def resize_bilinear(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Antialiased bilinear resize of an (n, h, w, c) uint8 batch to (n, height, width, c)."""
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"resize_bilinear takes an (n, h, w, c) uint8 array, not {images.dtype} {images.shape}")
    return np.ascontiguousarray(_pass(_pass(images, width, 2), height, 1))
