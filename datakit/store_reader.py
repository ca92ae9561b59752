"""Reading a written pixel store back a chunk at a time, without keeping its pages.

A memory map of a ``.npy`` store is cheap to read, but every page it has touched stays in
the reading process's resident memory until the map is closed: the checksum and statistics
of a freshly written 175 MB store would add 175 MB to the writer's peak. :class:`StoreReader`
opens a short-lived map for each read and copies out what was asked for, so a pass over the
store holds one chunk (the pages stay in the operating system's file cache, which it can
reclaim).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


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
