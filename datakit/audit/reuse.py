"""Real-image computations reused across audits, keyed by what they are computed from.

Most of an audit's arithmetic never sees a generated image: the judge's embeddings of the
manifest's training and held-out images, their k-NN radii, the held-out images' nearest
training neighbours, the held-out side of PRDC and KID, each class's real modes. Every run
audited against the same manifest and judge repeats it. :func:`reused` computes such a
value once and keeps it

- in memory for the process (one audit asks for the k-NN pass of the reference both for
  PRDC's radii and for memorisation's 1-NN distances; callers share the arrays and must
  not change them), and
- on disk beside the cached judges (``cache_root()/audit``), when the audit uses the cache
  (``AuditConfig.use_cache``), for the next audit of a run of the same manifest.

The key is the content of every argument (arrays by dtype, shape and bytes), the function's
qualified name and source text, datakit's version and :data:`REUSE_VERSION`: a stored value
is one the same call would compute now, so audit.json is the same to the last digit whether
a value was computed or reused (``tests/test_audit_reuse.py`` checks it). A stored file that
cannot be read is recomputed and rewritten.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import os
import typing
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np

from datakit._core.atomic import temp_path
from datakit._core.version import __version__
from datakit.judge.cache import cache_root

#: Bumped when a reused value's meaning changes without its function's source changing.
REUSE_VERSION = 1
#: Values kept in memory per process (a few MB each).
MEMORY_ENTRIES = 32
#: Files kept on disk; the least recently used beyond this are removed.
DISK_ENTRIES = 400

T = TypeVar("T")
_memory: "OrderedDict[str, Any]" = OrderedDict()


def reuse_dir() -> Path:
    """Where reused values are stored: ``cache_root()/audit``."""
    return cache_root() / "audit"


def _feed(h: "hashlib._Hash", value: Any) -> None:
    if isinstance(value, np.ndarray):
        a = np.ascontiguousarray(value)
        h.update(f"array|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.view(np.uint8).reshape(-1).data if a.size else b"")
    elif isinstance(value, (list, tuple)):
        h.update(f"seq{len(value)}|".encode())
        for v in value:
            _feed(h, v)
    elif isinstance(value, dict):
        h.update(f"dict{len(value)}|".encode())
        for k in sorted(value):
            _feed(h, k)
            _feed(h, value[k])
    elif value is None or isinstance(value, (bool, int, float, str, np.generic)):
        h.update(f"{type(value).__name__}|{value!r}|".encode())
    else:  # torch devices and the like: their text names them
        h.update(f"{type(value).__name__}|{value}|".encode())


def key_of(name: str, *parts: Any) -> str:
    """The hex digest naming a value computed from ``parts`` by ``name``."""
    h = hashlib.sha256(f"datakit {__version__} reuse {REUSE_VERSION} {name}|".encode())
    for p in parts:
        _feed(h, p)
    return h.hexdigest()


@functools.lru_cache(maxsize=None)
def _source(fn: Callable) -> str:
    """The source text of ``fn``, read once per process (keys ask for it on every call)."""
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        return ""


def sources(*fns: Callable) -> str:
    """The source text of ``fns``: part of a key, so a value is recomputed when its code changes."""
    return "\n".join(_source(fn) for fn in fns)


# -- a value as named arrays and back ------------------------------------------------------
def _pack(value: Any) -> dict[str, np.ndarray]:
    if value is None:   # e.g. fit_modes on a class too small to cluster
        return {"none": np.zeros(0)}
    if isinstance(value, (float, int, bool)):
        return {"scalar": np.asarray(value)}
    if isinstance(value, np.ndarray):
        return {"array": value}
    if dataclasses.is_dataclass(value):
        return {f"field_{f.name}": np.asarray(getattr(value, f.name))
                for f in dataclasses.fields(value) if getattr(value, f.name) is not None}
    if isinstance(value, tuple):
        return {f"item_{i}": np.asarray(v) for i, v in enumerate(value)}
    if isinstance(value, dict):
        return {f"key_{k}": np.asarray(v) for k, v in value.items()}
    raise TypeError(f"reused() cannot store a {type(value).__name__}")


def _scalar(a: np.ndarray) -> Any:
    return a.item() if a.ndim == 0 else a


def _unpack(kind: Any, arrays: dict[str, np.ndarray]) -> Any:
    if "none" in arrays:
        return None
    if kind in (float, int, bool):
        return kind(arrays["scalar"].item())
    if kind is np.ndarray:
        return arrays["array"]
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        out = {}
        for f in dataclasses.fields(kind):
            a = arrays.get(f"field_{f.name}")
            out[f.name] = None if a is None else (a if "ndarray" in str(hints.get(f.name)) else _scalar(a))
        return kind(**out)
    if kind is tuple:
        return tuple(_scalar(arrays[f"item_{i}"]) for i in range(len(arrays)))
    if kind is dict:
        return {k[4:]: _scalar(v) for k, v in arrays.items()}
    raise TypeError(f"reused() cannot restore a {kind!r}")


def _read(path: Path, kind: Any) -> Any | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            value = _unpack(kind, {k: z[k] for k in z.files})
    except Exception:  # a truncated or foreign file: computed again and rewritten
        return None
    try:
        os.utime(path)  # recently used: kept by _prune
    except OSError:     # removed meanwhile by another process's _prune: the value stands
        pass
    return value


def _write(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with temp_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **_pack(value))
    _prune(path.parent)


def _prune(folder: Path) -> None:
    """Keep the :data:`DISK_ENTRIES` most recently used files (other processes, e.g. a study's
    parallel runs, may be reading and pruning the same folder)."""
    files = list(folder.glob("*.npz"))
    if len(files) <= DISK_ENTRIES:
        return
    used = []
    for p in files:
        try:
            used.append((p.stat().st_mtime, p))
        except OSError:
            continue
    for _, p in sorted(used, reverse=True)[DISK_ENTRIES:]:
        p.unlink(missing_ok=True)


def _remember(key: str, value: Any) -> None:
    _memory[key] = value
    _memory.move_to_end(key)
    while len(_memory) > MEMORY_ENTRIES:
        _memory.popitem(last=False)


def memo(name: str, parts: tuple, compute: Callable[[], T], kind: Any, *, disk: bool) -> T:
    """``compute()``, or the value it gave before for the same ``name`` and ``parts``.

    ``kind`` is the value's type (``float``, ``int``, ``bool``, ``np.ndarray``, a ``tuple``
    or ``dict`` of arrays and scalars, or a dataclass of them; the value may also be None);
    ``disk`` also keeps it in :func:`reuse_dir`.
    """
    key = key_of(name, *parts)
    if key in _memory:
        _memory.move_to_end(key)
        return _memory[key]
    path = reuse_dir() / f"{key[:40]}.npz"
    value = _read(path, kind) if disk and path.exists() else None
    if value is None:
        value = compute()
        if disk:
            _write(path, value)
    _remember(key, value)
    return value


def reused(fn: Callable[..., T], *args: Any, disk: bool = True, kind: Any = np.ndarray, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, reused when the same function (same source) was called with
    the same arguments (by content) before: see the module docstring."""
    name = f"{fn.__module__}.{fn.__qualname__}"
    return memo(name, (_source(fn), args, kwargs), lambda: fn(*args, **kwargs), kind, disk=disk)


@dataclasses.dataclass(frozen=True)
class Reuse:
    """How one audit reuses real-image values: in memory always, on disk too when ``disk``
    (``AuditConfig.use_cache``). ``reuse(fn, *args, **kwargs)`` is :func:`reused`."""

    disk: bool = False

    def __call__(self, fn: Callable[..., T], *args: Any, kind: Any = np.ndarray, **kwargs: Any) -> T:
        return reused(fn, *args, disk=self.disk, kind=kind, **kwargs)

    def memo(self, name: str, parts: tuple, compute: Callable[[], T], kind: Any) -> T:
        """:func:`memo` with this audit's ``disk``."""
        return memo(name, parts, compute, kind, disk=self.disk)

    def held(self, name: str, *parts: Any) -> Callable[[np.ndarray, np.ndarray, Callable], tuple]:
        """A floor test's ``held_memo`` (:func:`datakit.audit.stats.floors.floor_test`): its
        held-out side (statistic and bootstrap replicates) reused across audits, keyed by
        ``name``, ``parts`` (what the statistic reads: real arrays, settings, the source of
        its code) and the held-out positions and resamples."""
        def held_memo(h: np.ndarray, draws: np.ndarray, compute: Callable[[], tuple]) -> tuple:
            return self.memo(f"floor test {name}", (parts, h, draws), compute, tuple)
        return held_memo


def clear_memory() -> None:
    """Forget the values kept in memory (the disk copies stay)."""
    _memory.clear()
