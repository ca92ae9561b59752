"""Embedded source ``digits``: scikit-learn's bundled 8×8 handwritten digits (no download).

1,797 images of the digits 0-9 (UCI optical recognition set), 16 grey levels. They are
upscaled to the requested store size so they can train the same networks as MNIST.
There is no official split: every fifth image (by position) is ``test``, the rest ``train``.
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image

from datakit.errors import UnknownName
from datakit.manifest.model import Manifest
from datakit.sources.common import ErrorPolicy, finish

DATASET = "digits"
DOMAIN = "handwritten"
CLASSES = [str(d) for d in range(10)]
SIZES = (8, 16, 28, 32, 64)


def load_digits_arrays(size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """The bundled digits as uint8 N×size×size×1 (white ink on black, like MNIST) and labels."""
    if size not in SIZES:
        raise UnknownName(f"Unsupported --size {size} for digits; use one of {', '.join(map(str, SIZES))}.")
    from sklearn.datasets import load_digits

    bunch = load_digits()
    raw = np.clip(bunch.images * (255.0 / 16.0), 0, 255).astype(np.uint8)  # 0..16 grey levels
    if size == 8:
        out = raw
    else:
        out = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR))
                        for im in raw])
    return out[..., None], bunch.target.astype(np.int64)


def ingest_digits(*, size: int = 32, out: str | os.PathLike | None = None,
                  name: str | None = None) -> Manifest:
    """Ingest scikit-learn's bundled handwritten digits into a manifest.

    Args:
        size: side of the square store images (8 keeps the originals).
        out: output folder or ``.parquet`` path (default ``data_manifests/``).
        name: manifest name (default ``digits``).
    """
    pixels, labels = load_digits_arrays(size)
    records = [{
        "id": f"digits/{i:04d}", "dataset": DATASET, "subset": "digits",
        "split": "test" if i % 5 == 4 else "train", "domain": DOMAIN,
        "label": int(lab), "class_name": CLASSES[lab],
        "source": f"sklearn.datasets.load_digits[{i}]",
        "orig_width": 8, "orig_height": 8, "orig_mode": "L",
    } for i, lab in enumerate(labels)]
    config = {"source": "digits", "size": size}
    return finish(out, name or "digits", records, pixels, classes=CLASSES,
                  inputs=[{"path": "sklearn.datasets.load_digits", "sha256": None}],
                  policy=ErrorPolicy(), config=config)
