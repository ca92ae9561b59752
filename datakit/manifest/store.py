"""The pixel store on disk: spilled a chunk at a time while an ingest decodes, read back a chunk at a time.

**Spilling.** A :class:`PixelSpill` appends uint8 image chunks to a raw temporary file beside the manifest
being written (``.NAME.pixels.npy.part.tmp-PID``; the next ingest of that name removes one a
killed process left) and reads them back as one read-only memory map. It is for pixels whose count or order is known only at the end (an archive streamed and
decoded in parallel); :func:`in_order` then feeds them, in the manifest's order and a chunk
at a time, to :func:`datakit.manifest.write.write_manifest_chunks`. The temporary file is removed
when the ``with`` block ends, whatever happens.

    with PixelSpill(store_path, (32, 32, 1)) as spill:
        for chunk in decoded_chunks():
            spill.append(chunk)
        write_manifest_chunks(path, table, in_order(spill.pixels(), order), (32, 32, 1), meta)

**Reading back.** A memory map of a ``.npy`` store is cheap to read, but every page it has touched stays in
the reading process's resident memory until the map is closed: the checksum and statistics
of a freshly written 175 MB store would add 175 MB to the writer's peak. :class:`StoreReader`
opens a short-lived map for each read and copies out what was asked for, so a pass over the
store holds one chunk (the pages stay in the operating system's file cache, which it can
reclaim).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from datakit._core.atomic import remove_stale_temps, temp_name
from datakit.errors import ManifestError


class StoreReader:
    """Array-like, read-only view of an N×H×W×C uint8 ``.npy`` store: ``len``, ``shape``,
    ``dtype``, ``ndim`` and indexing (which returns an in-memory copy)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        store = np.load(self.path, mmap_mode="r")
        self.shape: tuple[int, ...] = tuple(store.shape)
        self.dtype = store.dtype
        del store

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        store = np.load(self.path, mmap_mode="r")
        part = store[key]
        # A slice is a view of the map (copy it, so that the map closes); fancy indexing
        # has already copied.
        out = np.array(part) if np.may_share_memory(part, store) else part.view(np.ndarray)
        del store, part
        return out


#: Bytes of pixels a chunked writer handles at once (decoded, converted, written).
CHUNK_BYTES = 32 << 20


def chunk_rows(image_shape: tuple[int, ...], chunk_bytes: int | None = None) -> int:
    """How many images of ``image_shape`` make one chunk (at least 64)."""
    return max(64, (chunk_bytes or CHUNK_BYTES) // max(1, int(np.prod(image_shape))))


class PixelSpill:
    """A temporary, append-only pixel store of images of one ``image_shape`` (H, W, C)."""

    def __init__(self, beside: str | os.PathLike, image_shape: tuple[int, int, int]):
        self._base = Path(f"{beside}.part")
        self.path = temp_name(self._base)  # .NAME.pixels.npy.part.tmp-PID
        self.image_shape = tuple(int(x) for x in image_shape)
        self.rows = 0
        self._file = None
        self._made: list[Path] = []

    def __enter__(self) -> "PixelSpill":
        # Folders made here are removed again if nothing else was written into them.
        self._made = [p for p in (self.path.parent, *self.path.parent.parents) if not p.exists()]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self._base)  # spills of killed ingests
        self._file = open(self.path, "wb")
        return self

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            self._file.close()
        self.path.unlink(missing_ok=True)
        for folder in self._made:  # innermost first
            try:
                folder.rmdir()
            except OSError:  # not empty: the manifest (or something else) is there
                break

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

    def in_order(self, order: np.ndarray, chunk_bytes: int | None = None) -> Iterator[np.ndarray]:
        """The spilled images ``order[0]``, ``order[1]``... a chunk at a time.

        Each chunk is read through a map of only the rows it spans, dropped before the next:
        when ``order`` is ascending (or nearly: a folder walked in sorted order) memory holds
        about one chunk, not the mapped pages of the whole spill as :func:`in_order` would.
        """
        if self._file is not None and not self._file.closed:
            self._file.close()
        order = np.asarray(order, dtype=np.int64)
        row_bytes = int(np.prod(self.image_shape))
        step = chunk_rows(self.image_shape, chunk_bytes)
        for s in range(0, len(order), step):
            rows = order[s:s + step]
            lo, hi = int(rows.min()), int(rows.max()) + 1
            span = np.memmap(self.path, np.uint8, "r", offset=lo * row_bytes,
                             shape=(hi - lo, *self.image_shape))
            chunk = span[rows - lo]  # fancy indexing copies: the map can go
            del span
            yield chunk


def in_order(pixels: np.ndarray, order: np.ndarray) -> Iterator[np.ndarray]:
    """``pixels[order]``, a chunk at a time (for :func:`datakit.manifest.write_manifest_chunks`)."""
    step = chunk_rows(pixels.shape[1:])
    for s in range(0, len(order), step):
        yield np.asarray(pixels[order[s:s + step]])
