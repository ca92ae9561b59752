"""Writing a manifest: three files switched over together, one writer at a time.

A manifest is three files (table, sidecar, pixel store). Replacing one must leave, after a
kill at any instant, either the old manifest or the new one:

1. the new store, table and sidecar are written to temporary names (``.NAME.*.tmp-PID``);
2. the old store and table are kept as hard links (``.NAME.*.prev``) and a journal
   ``.NAME.commit`` records the new write's id;
3. store and table are renamed into place, then the sidecar: its rename is the commit;
4. journal and kept files are removed.

A kill before step 3 ends leaves the old sidecar, whose write id is not the journal's: the
next reader or writer puts the kept files back (:func:`recover`). After it, the new sidecar
names the journal's id, and only the leftovers are removed.

Writers of one manifest name take an advisory lock (``.NAME.lock``, ``fcntl.flock``) so
that two processes never interleave their renames; the second waits up to
``DATAKIT_LOCK_TIMEOUT`` seconds (default 120), then fails with a clear error.

:class:`ManifestWriter` is the small API a chunked writer builds on: write the pixels into
``writer.store_tmp`` (all at once with :meth:`ManifestWriter.write_store`, or through
``np.lib.format.open_memmap``), then :meth:`ManifestWriter.commit` the table and sidecar.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from datakit._core.atomic import remove_stale_temps, temp_name, write_npy
from datakit.errors import ManifestError
from datakit.manifest.model import manifest_paths, parquet_schema

DEFAULT_LOCK_TIMEOUT = 120.0


def _paths(path: str | os.PathLike) -> tuple[Path, Path, Path]:
    return manifest_paths(path)


def _aux(parquet: Path, suffix: str) -> Path:
    """``.NAME<suffix>`` beside the manifest (lock, journal)."""
    return parquet.with_name(f".{parquet.name[: -len('.parquet')]}{suffix}")


def _prev(path: Path) -> Path:
    return path.with_name(f".{path.name}.prev")


def lock_timeout() -> float:
    """Seconds a writer waits for another writer of the same manifest (DATAKIT_LOCK_TIMEOUT)."""
    try:
        return float(os.environ.get("DATAKIT_LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT))
    except ValueError:
        return DEFAULT_LOCK_TIMEOUT


@contextlib.contextmanager
def writer_lock(path: str | os.PathLike, timeout: float | None = None) -> Iterator[Path]:
    """Hold the advisory lock of the manifest at ``path`` (waiting up to ``timeout`` seconds).

    The lock file exists only while a writer holds it: the holder removes it before it lets
    go, and a waiter that locked a file already removed tries again on the current one, so
    no ``.NAME.lock`` is left behind, after a failed write either.
    """
    parquet = _paths(path)[0]
    lock = _aux(parquet, ".lock")
    timeout = lock_timeout() if timeout is None else timeout
    deadline = time.monotonic() + timeout
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _flock(fd, deadline, parquet, lock, timeout)
            if _same_file(fd, lock):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # its holder removed it as we waited: lock the one there now
    try:
        yield lock
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)  # while still holding it, so no one can lock it after this
        os.close(fd)  # closing releases the lock


def _flock(fd: int, deadline: float, parquet: Path, lock: Path, timeout: float) -> None:
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            if time.monotonic() >= deadline:
                raise ManifestError(
                    f"Another process is writing manifest {parquet.name} (it holds {lock}) "
                    f"and did not finish within {timeout:g} s. Wait for it, or write under "
                    "another name.") from None
            time.sleep(0.05)


def _same_file(fd: int, path: Path) -> bool:
    """True when the open ``fd`` is still the file at ``path`` (not removed or replaced)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def recover(path: str | os.PathLike) -> bool:
    """Finish or undo a manifest write that was interrupted (call with the lock held).

    Returns True when there was something to do.
    """
    parquet, sidecar, store = _paths(path)
    journal = _aux(parquet, ".commit")
    acted = False
    if journal.exists():
        acted = True
        try:
            write_id = json.loads(journal.read_text()).get("write_id")
        except (OSError, ValueError):
            write_id = None
        if write_id is None or _sidecar_write_id(sidecar) != write_id:
            # The sidecar never moved: the old manifest is the valid one; put it back.
            for f in (store, parquet):
                if _prev(f).exists():
                    os.replace(_prev(f), f)
                else:  # there was no old file: what is there belongs to the dead write
                    with contextlib.suppress(FileNotFoundError):
                        f.unlink()
        journal.unlink()
    for f in (store, parquet):  # kept files of a write that committed, or never began to switch
        if _prev(f).exists():
            acted = True
            _prev(f).unlink()
    for f in (store, parquet, sidecar):
        remove_stale_temps(f)
    return acted


def recover_if_interrupted(path: str | os.PathLike) -> None:
    """Called by readers: if a write was interrupted, wait for the writer or repair the files."""
    parquet = _paths(path)[0]
    if not _aux(parquet, ".commit").exists():
        return
    try:
        with writer_lock(parquet):
            recover(parquet)
    except OSError as e:
        raise ManifestError(
            f"Manifest {parquet} was being replaced when its writer stopped, and it cannot be "
            f"repaired here ({e.strerror}: {e.filename}). Write it again with the command that "
            "made it.") from e


def _sidecar_write_id(sidecar: Path) -> str | None:
    try:
        return json.loads(sidecar.read_text()).get("write_id")
    except (OSError, ValueError, AttributeError):
        return None


class ManifestWriter:
    """Write one manifest's files under temporary names, then switch them in atomically.

    Use as a context manager: entering takes the writer lock and repairs an interrupted
    write; leaving without :meth:`commit` (or on any error) removes the temporary files and
    leaves the old manifest as it was.

        with ManifestWriter(path) as w:
            w.write_store(pixels)
            w.commit(table, sidecar_dict)
    """

    def __init__(self, path: str | os.PathLike, *, timeout: float | None = None):
        self.parquet, self.sidecar, self.store = _paths(path)
        self.timeout = timeout
        self.store_tmp, self.parquet_tmp, self.sidecar_tmp = (
            temp_name(self.store), temp_name(self.parquet), temp_name(self.sidecar))
        self.write_id = uuid.uuid4().hex
        self._lock: contextlib.AbstractContextManager | None = None

    def __enter__(self) -> "ManifestWriter":
        self.parquet.parent.mkdir(parents=True, exist_ok=True)
        self._check_destinations()
        self._lock = writer_lock(self.parquet, self.timeout)
        self._lock.__enter__()
        try:
            recover(self.parquet)
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            for t in (self.store_tmp, self.parquet_tmp, self.sidecar_tmp):
                with contextlib.suppress(OSError):
                    t.unlink()
        finally:
            self._lock.__exit__(*exc)

    def _check_destinations(self) -> None:
        for f in (self.parquet, self.sidecar, self.store):
            if f.exists() and not f.is_file():
                raise ManifestError(f"Cannot write manifest {self.parquet.name}: {f} exists and is "
                                    "not a file. Move it away or choose another name.")

    def write_store(self, pixels: np.ndarray) -> None:
        """Write the whole pixel store (uint8 N×H×W×C) to its temporary name."""
        with open(self.store_tmp, "wb") as f:
            write_npy(f, pixels)

    def commit(self, table: pd.DataFrame, meta: dict[str, Any], *, default: Any = None) -> None:
        """Write table and sidecar, then switch all three in (sidecar last)."""
        table.to_parquet(self.parquet_tmp, index=False,
                         schema=parquet_schema(table, meta["classes"], meta["geometry"]))
        meta = {**meta, "write_id": self.write_id}
        self.sidecar_tmp.write_text(json.dumps(meta, indent=2, default=default))
        try:
            self._switch()
        except BaseException:
            recover(self.parquet)  # undo a half switch now, not at the next read
            raise

    def _switch(self) -> None:
        for f in (self.store, self.parquet):  # 2. keep the old files until the commit
            if f.exists():
                _keep(f, _prev(f))
        journal = _aux(self.parquet, ".commit")
        journal.write_text(json.dumps({"write_id": self.write_id, "pid": os.getpid()}))
        os.replace(self.store_tmp, self.store)      # 3.
        os.replace(self.parquet_tmp, self.parquet)
        os.replace(self.sidecar_tmp, self.sidecar)  # the commit
        journal.unlink()                            # 4.
        for f in (self.store, self.parquet):
            with contextlib.suppress(FileNotFoundError):
                _prev(f).unlink()


def _keep(f: Path, prev: Path) -> None:
    """A second name for ``f`` (a hard link; a copy where links are not supported)."""
    with contextlib.suppress(FileNotFoundError):
        prev.unlink()
    try:
        os.link(f, prev)
    except OSError:
        shutil.copy2(f, prev)

