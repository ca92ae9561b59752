"""Pixels written chunk by chunk, so that ingest and compose hold one chunk, not the output.

A :class:`PixelSpill` appends uint8 image chunks to a raw temporary file beside the manifest
being written (``.NAME.pixels.npy.part-PID-K``) and reads them back as one read-only memory
map, which the manifest writer then copies into the store a chunk at a time. The temporary
file is removed when the ``with`` block ends, whatever happens.

    with PixelSpill(store_path, (32, 32, 1)) as spill:
        for chunk in decoded_chunks():
            spill.append(chunk)
        write_manifest(path, table, spill.pixels(), meta)
"""
from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np

from datakit.errors import ManifestError

#: Bytes of pixels a chunked writer handles at once (decoded, converted, written).
CHUNK_BYTES = 32 << 20
_serial = itertools.count()


def chunk_rows(image_shape: tuple[int, ...], chunk_bytes: int | None = None) -> int:
    """How many images of ``image_shape`` make one chunk (at least 64)."""
    return max(64, (chunk_bytes or CHUNK_BYTES) // max(1, int(np.prod(image_shape))))


class PixelSpill:
    """A temporary, append-only pixel store of images of one ``image_shape`` (H, W, C)."""

    def __init__(self, beside: str | os.PathLike, image_shape: tuple[int, int, int]):
        beside = Path(beside)
        self.path = beside.with_name(f".{beside.name}.part-{os.getpid()}-{next(_serial)}")
        self.image_shape = tuple(int(x) for x in image_shape)
        self.rows = 0
        self._file = None

    def __enter__(self) -> "PixelSpill":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "wb")
        return self

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            self._file.close()
        self.path.unlink(missing_ok=True)

    def append(self, images: np.ndarray) -> None:
        """Add uint8 N×H×W×C images at the end."""
        if images.dtype != np.uint8 or tuple(images.shape[1:]) != self.image_shape:
            raise ManifestError(f"Cannot add {images.dtype} images of shape {images.shape[1:]} "
                                f"to a pixel store of uint8 {self.image_shape} images.")
        np.ascontiguousarray(images).tofile(self._file)
        self.rows += len(images)

    def pixels(self) -> np.ndarray:
        """Everything appended, as a read-only N×H×W×C memory map (the file is closed)."""
        if self._file is not None and not self._file.closed:
            self._file.close()
        if self.rows == 0:
            return np.empty((0, *self.image_shape), np.uint8)
        return np.memmap(self.path, np.uint8, "r", shape=(self.rows, *self.image_shape))


def gather(pixels: np.ndarray, order: np.ndarray, spill: PixelSpill) -> np.ndarray:
    """``pixels[order]`` written chunk by chunk into ``spill``; returns its memory map."""
    step = chunk_rows(pixels.shape[1:])
    for s in range(0, len(order), step):
        spill.append(np.asarray(pixels[order[s:s + step]]))
    return spill.pixels()
