"""Atomic writes: every file datakit writes goes through a temporary file and a rename.

A reader (or a process that survives a kill) sees either the old file or the new one, never
half of one. Temporary files are named ``.NAME.tmp-PID`` beside their destination, removed
on every failure path, and those left by killed processes (their PID no longer alive) are
removed by the next write of the same destination.

    atomic_write_text(path, "hello")              # text, bytes, JSON, a .npy array
    with temp_path(path) as tmp:                  # anything else that writes a file
        torch.save(state, tmp)                    # renamed over ``path`` on success
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np

_TMP = ".tmp-"


def temp_name(path: str | os.PathLike) -> Path:
    """The temporary name this process uses for ``path`` (hidden, beside it, tagged with our PID)."""
    path = Path(path)
    return path.with_name(f".{path.name}{_TMP}{os.getpid()}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's live process (or we cannot tell): leave its file alone
    return True


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove temporary files of ``path`` left by processes that are no longer alive.

    Returns the files removed. Files of live processes (including this one) are kept.
    """
    path = Path(path)
    removed = []
    try:
        candidates = list(path.parent.glob(f".{_glob_escape(path.name)}{_TMP}*"))
    except OSError:
        return removed
    for tmp in candidates:
        pid = tmp.name.rsplit(_TMP, 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid() or _pid_alive(int(pid)):
            continue
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed.append(tmp)
    return removed


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


@contextlib.contextmanager
def temp_path(path: str | os.PathLike, *, replace: bool = True, fsync: bool = False
              ) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    The temporary file is removed when the block raises (any exception, Ctrl-C included)
    or when the rename fails. With ``replace=False`` the caller renames it (the manifest
    writer switches three files over in a chosen order) and only failures clean up.
    """
    path = Path(path)
    remove_stale_temps(path)
    tmp = temp_name(path)
    try:
        yield tmp
        if fsync and tmp.exists():
            _fsync(tmp)
        if replace:
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically; return ``path``."""
    path = Path(path)
    with temp_path(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)
    return path


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; return ``path``."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int = 2,
                      default: Any = str, allow_nan: bool = True) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically; return ``path``."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, default=default,
                                              allow_nan=allow_nan) + "\n")


def write_npy(f, array: np.ndarray) -> None:
    """Write ``array`` in .npy format to an open binary file (no pickles)."""
    np.lib.format.write_array(f, np.ascontiguousarray(array), allow_pickle=False)


