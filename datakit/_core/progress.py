"""Progress bars for long work, shared by the library and the CLI.

tqdm gives rate and ETA for free and works the same from the Python API and the CLI;
set ``DATAKIT_PROGRESS=0`` to silence it (tests do), ``=1`` to force it on a non-terminal.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def _enabled() -> bool | None:
    flag = os.environ.get("DATAKIT_PROGRESS")
    if flag is None:
        return None  # tqdm decides: on for a terminal, off otherwise
    return flag not in ("0", "false", "no", "")


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "",
             unit: str = "it", **kwargs) -> "tqdm[T]":
    """Wrap ``iterable`` (or create a manual bar with ``total``) in a progress bar on stderr."""
    enabled = _enabled()
    disable = (not sys.stderr.isatty()) if enabled is None else (not enabled)
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable,
                dynamic_ncols=True, leave=False, file=sys.stderr, **kwargs)


def log(message: str) -> None:
    """One progress message through the ``datakit`` logger (the CLI sends it to stderr, so
    --json output stays clean; -q silences it)."""
    logging.getLogger("datakit").info(message)


def warn(message: str) -> None:
    """A message the user must see (something was moved, dropped or assumed), at WARNING:
    shown even with -q."""
    logging.getLogger("datakit").warning(message)


def iterate(iterable: Iterable[T], **kwargs) -> Iterator[T]:
    """Iterate with a progress bar; convenience for ``for x in iterate(xs, desc=...)``."""
    yield from progress(iterable, **kwargs)
