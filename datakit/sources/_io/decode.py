"""Parallel decoding of image files: the main process streams files (from a tree or an
archive, :mod:`datakit.sources._io.archive`) and ships their bytes in batches to a pool of
worker processes that decode, check (decompression bombs, :mod:`datakit.sources._io.images`)
and fit them to the store geometry; results come back in stream order, so the output is
deterministic whatever the number of workers. Each batch's pixels go straight to a
:class:`~datakit.manifest.store.PixelSpill` on disk, so the main process holds the batches in
flight (a few times ``BATCH`` images), never the whole output. Used by the Chars74K and
folder sources.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
from collections import deque
from typing import Callable, Iterator

import numpy as np

from datakit._core.progress import log, progress
from datakit.errors import DatakitError, FormatError
from datakit.manifest.store import PixelSpill
from datakit.sources._io.images import FitOptions, decode_image, fit_square
from datakit.sources.common import ErrorPolicy

BATCH = 256                # files per task shipped to a worker: large enough to amortise IPC,
BATCH_BYTES = 16 << 20     # and small enough in bytes that the tasks in flight stay small

#: Suffixes of the files that sit in image folders and are never images: notes, lists,
#: labels, metadata and the thumbnail caches of file managers (Thumbs.db, desktop.ini).
#: They are left out (and counted in a log line); any other file must decode as an image.
NOT_IMAGE_SUFFIXES = frozenset({".txt", ".md", ".rst", ".csv", ".tsv", ".json", ".yaml", ".yml",
                                ".xml", ".html", ".pdf", ".ini", ".db", ".log"})


def is_not_an_image(name: str) -> bool:
    """Whether a file's name says it is no image: hidden (a dot first: macOS resource forks
    and the like) or a suffix of :data:`NOT_IMAGE_SUFFIXES`."""
    base = name.rsplit("/", 1)[-1]
    return base.startswith(".") or os.path.splitext(base)[1].lower() in NOT_IMAGE_SUFFIXES


#: ``class_of_folder(folder, where)`` -> class name, or raises FormatError for a folder
#: that is not a class.
ClassOfFolder = Callable[[str, str], str]


# -- decoding (runs in the worker processes) ----------------------------------------

_WORKER_OPTS: FitOptions | None = None


def _init_worker(opts: FitOptions) -> None:
    global _WORKER_OPTS
    _WORKER_OPTS = opts
    # Ctrl-C reaches the whole process group: the parent stops the pool; workers stay quiet
    # (no KeyboardInterrupt or BrokenPipe tracebacks from each of them).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _decode_batch(batch: list[tuple[str, bytes]], opts: FitOptions | None = None
                  ) -> tuple[np.ndarray, list[tuple[int, int, str] | DatakitError]]:
    """Decode and fit a batch of files; return their pixels (good ones, in order) and per
    file either ``(orig_width, orig_height, orig_mode)`` or the error it raised."""
    opts = opts or _WORKER_OPTS
    images, results = [], []
    for where, data in batch:
        try:
            im = decode_image(data, where)
            results.append((im.width, im.height, im.mode))
            images.append(fit_square(im, opts))
        except DatakitError as e:
            results.append(e)
        except Exception as e:  # a decoder bug on a hostile file must not kill the ingest
            results.append(FormatError(f"{where} cannot be decoded ({type(e).__name__}: {e})."))
    shape = (0, opts.size, opts.size, opts.channels)
    return (np.stack(images) if images else np.empty(shape, np.uint8)), results


def decode_into(spill: PixelSpill, files: Iterator[tuple[str, str, str, bytes | None]],
                vocab: list[str], opts: FitOptions, policy: ErrorPolicy, workers: int | None,
                class_of_folder: ClassOfFolder):
    """Batch the streamed files, decode them (in a pool when there is more than one batch),
    append the good ones' pixels to ``spill`` in stream order, a batch at a time, and return
    ``(rels, metas, folders)``: ``rels[i]`` and ``metas[i]`` describe spilled image i.

    Files sit in class folders directly below the root; ``class_of_folder`` names each
    folder's class (folders of classes outside ``vocab`` are passed over). ``folders`` maps
    each selected class folder seen to ``[where, number of files]``.
    """
    rels: list[tuple[str, str, str]] = []      # (relative path, source, class) per good image
    metas: list[tuple[int, int, str]] = []     # (orig_width, orig_height, orig_mode)
    folders: dict[str, list] = {}
    bad_folders: set[str] = set()
    folder_class: dict[str, str] = {}          # SampleNNN -> class name, parsed once
    kept = set(vocab)
    pending: deque = deque()
    workers = (os.cpu_count() or 1) if workers is None else max(0, int(workers))
    pool = None
    bar = progress(desc="decoding", unit="img")
    not_images: list[str] = []                 # notes and the like in class folders, left out

    def collect(batch_meta, result) -> None:
        arr, results = result
        for (rel, src, cls), res in zip(batch_meta, results):
            if isinstance(res, DatakitError):
                policy.handle(src, res)  # raises before any pixel of the batch is spilled
            else:
                rels.append((rel, src, cls))
                metas.append(res)
        spill.append(arr)
        bar.update(len(results))

    def decode(batch_meta, batch, parallel: bool) -> None:
        nonlocal pool
        if not parallel:
            collect(batch_meta, _decode_batch(batch, opts))
            return
        if pool is None:
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            pool = ctx.Pool(workers, initializer=_init_worker, initargs=(opts,))
        pending.append((batch_meta, pool.apply_async(_decode_batch, (batch,))))
        while len(pending) > 2 * workers + 1:  # bounded: memory stays flat, order kept
            meta, res = pending.popleft()
            collect(meta, res.get())

    parallel = workers > 1
    batch_meta: list[tuple[str, str, str]] = []
    batch: list[tuple[str, bytes]] = []
    batch_bytes = 0
    held = None  # the first full batch waits: a single batch is decoded here, without a pool
    try:
        for kind, rel, where, data in files:
            folder, _, rest = rel.partition("/")
            if kind == "file" and not rest:
                continue  # a loose file beside the class folders (a list or a readme)
            if folder in bad_folders:
                continue
            cls = folder_class.get(folder)
            if cls is None:
                folder_where = where[: len(where) - len(rest) - 1] if rest else where
                try:
                    cls = folder_class[folder] = class_of_folder(folder, folder_where)
                except FormatError as e:
                    bad_folders.add(folder)
                    policy.handle(folder_where, e)
                    continue
                if cls in vocab:
                    folders[folder] = [folder_where, 0]
            if cls not in kept:
                continue
            entry = folders[folder]
            if kind == "dir":
                continue
            if is_not_an_image(rest):
                if not rest.rsplit("/", 1)[-1].startswith("."):
                    not_images.append(where)
                continue
            entry[1] += 1
            batch_meta.append((rel, where, cls))
            batch.append((where, data))
            batch_bytes += len(data)
            if len(batch) >= BATCH or batch_bytes >= BATCH_BYTES:
                if held is None and pool is None:
                    held = (batch_meta, batch)
                else:
                    if held is not None:
                        decode(*held, parallel)
                        held = None
                    decode(batch_meta, batch, parallel)
                batch_meta, batch, batch_bytes = [], [], 0
        parallel = parallel and (pool is not None or (held is not None and bool(batch)))
        if held is not None:
            decode(*held, parallel)
        if batch:
            decode(batch_meta, batch, parallel)
        while pending:
            meta, res = pending.popleft()
            collect(meta, res.get())
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
    if not_images:
        log(f"Left out {len(not_images)} file(s) whose names say they are not images: "
            f"{', '.join(not_images[:3])}{', …' if len(not_images) > 3 else ''}")
    return rels, metas, folders
