"""Where trained judges are cached: ``$DATAKIT_CACHE/judges``, else ``~/.cache/datakit/judges``."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

#: The environment variable naming the cache's root folder.
CACHE_ENV = "DATAKIT_CACHE"


def cache_root(default: Path | None = None) -> Path:
    """``$DATAKIT_CACHE`` when set, else ``default``, else ``~/.cache/datakit``."""
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root)
    return default if default is not None else Path.home() / ".cache" / "datakit"


def cache_dir() -> Path:
    """The folder of cached judges: ``cache_root()/judges``."""
    return cache_root() / "judges"


@contextlib.contextmanager
def cache_at(folder: str | os.PathLike) -> Iterator[None]:
    """Point the judge cache at ``folder`` for the duration of a block (a study task)."""
    before = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(folder)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(CACHE_ENV, None)
        else:
            os.environ[CACHE_ENV] = before
