"""Progress of long work, shared by the library and the CLI.

On a terminal, a tqdm bar on stderr (rate and ETA for free, the same from the Python API and
the CLI). Off a terminal (a log file, CI, a notebook, a Ray worker) a bar would be noise or
nothing, so the same call logs a line through the ``datakit`` logger at most every
``DATAKIT_PROGRESS_EVERY`` seconds (default 10), and one when the stage ends::

    train acgan: 1,200/5,000 (24%), 41.3 step/s, 0:29 elapsed, ETA 1:32
    train acgan: 5,000/5,000 done in 2:01, 41.3 step/s

A stage shorter than the interval logs nothing. ``DATAKIT_PROGRESS=0`` silences bars and
lines (tests do); ``=1`` forces the bar on a non-terminal.
"""
from __future__ import annotations

import logging
import math
import os
import sys
import time
from typing import Any, Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

EVERY_ENV = "DATAKIT_PROGRESS_EVERY"
#: Seconds between two progress lines off a terminal, unless DATAKIT_PROGRESS_EVERY says otherwise.
DEFAULT_EVERY = 10.0

_clock = time.monotonic  # the tests replace it with a fake clock
_warned: set[str] = set()  # DATAKIT_PROGRESS_EVERY values already warned about


def _enabled() -> bool | None:
    flag = os.environ.get("DATAKIT_PROGRESS")
    if flag is None:
        return None  # a bar on a terminal, log lines otherwise
    return flag not in ("0", "false", "no", "")


def _on_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # no stderr, or a closed one
        return False


def log_every() -> float:
    """Seconds between progress lines off a terminal: ``DATAKIT_PROGRESS_EVERY``, else 10."""
    raw = os.environ.get(EVERY_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_EVERY
    try:
        every = float(raw)
    except ValueError:
        every = math.nan
    if not (every > 0 and math.isfinite(every)):
        # A typo in a logging setting should not stop an hour of work: say so (once), go on.
        if raw not in _warned:
            _warned.add(raw)
            logging.getLogger("datakit").warning(
                f"{EVERY_ENV}={raw!r} is not a number of seconds above 0; logging progress every "
                f"{DEFAULT_EVERY:g} s (set it to e.g. 30, or unset it).")
        return DEFAULT_EVERY
    return every


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "",
             unit: str = "it", **kwargs) -> Any:
    """Wrap ``iterable`` (or create a manual bar with ``total``, advanced by ``update(n)``).

    A tqdm bar on a terminal; off one, a :class:`ProgressLog` that logs a line at most every
    :func:`log_every` seconds and one at the end; nothing with ``DATAKIT_PROGRESS=0``. Both
    take ``update``, ``set_postfix``, ``set_postfix_str``, ``close`` and ``with``.
    """
    enabled = _enabled()
    if enabled is None and not _on_terminal():
        return ProgressLog(iterable, total=total, desc=desc, unit=unit, every=log_every(),
                           initial=kwargs.get("initial", 0), unit_scale=kwargs.get("unit_scale", False))
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not (enabled or enabled is None),
                dynamic_ncols=True, leave=False, file=sys.stderr, **kwargs)


class ProgressLog:
    """The log-line form of a progress bar (the subset of tqdm's interface datakit uses)."""

    def __init__(self, iterable: Iterable[T] | None = None, *, total: int | None = None,
                 desc: str = "", unit: str = "it", every: float = DEFAULT_EVERY, initial: int = 0,
                 unit_scale: bool = False):
        self.iterable, self.desc, self.unit, self.every = iterable, desc, unit, every
        self.unit_scale = unit_scale
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.n, self.initial = total, initial, initial
        self.postfix = ""
        self.start = self.last = _clock()
        self.logged = False
        self.closed = False

    def __iter__(self) -> Iterator[T]:
        try:
            for x in self.iterable or ():
                yield x
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> "ProgressLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more done; log a line when the last one is ``every`` seconds old."""
        self.n += n
        now = _clock()
        if now - self.last >= self.every:
            self.last, self.logged = now, True
            log(self.line(now))

    def set_postfix(self, **values: Any) -> None:
        """Readings shown after the count (``loss_d=0.693, loss_g=0.701``)."""
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def set_postfix_str(self, text: str = "") -> None:
        self.postfix = text

    def close(self) -> None:
        """Log the closing line, if the stage lasted at least one interval."""
        if self.closed:
            return
        self.closed = True
        now = _clock()
        if self.logged or now - self.start >= self.every:
            log(self.line(now, end=True))

    def line(self, now: float, *, end: bool = False) -> str:
        """``desc: done/total (pct), rate, elapsed, ETA`` (the closing line: ``done in``)."""
        elapsed = now - self.start
        done = self.n - self.initial
        count = self._amount(self.n) + (f"/{self._amount(self.total)}" if self.total else "")
        parts = [f"{self.desc}: {count}" if self.desc else count]
        if end:
            parts[0] += f" done in {_interval(elapsed)}"
        elif self.total:
            parts[0] += f" ({self.n / self.total:.0%})"
        if done > 0 and elapsed > 0:
            parts.append(self._rate(done / elapsed))
        if not end:
            parts.append(f"{_interval(elapsed)} elapsed")
            if self.total and done > 0 and elapsed > 0:
                parts.append(f"ETA {_interval(max(self.total - self.n, 0) * elapsed / done)}")
        if self.postfix:
            parts.append(self.postfix)
        return ", ".join(parts)

    def _amount(self, n: float | None) -> str:
        if self.unit_scale:
            return tqdm.format_sizeof(n or 0, self.unit, 1024 if self.unit == "B" else 1000)
        return f"{n:,}"

    def _rate(self, per_second: float) -> str:
        if self.unit_scale:
            return f"{tqdm.format_sizeof(per_second, self.unit, 1024 if self.unit == 'B' else 1000)}/s"
        if per_second >= 1:
            return f"{per_second:,.1f} {self.unit}/s"
        return f"{1 / per_second:,.1f} s/{self.unit}"  # slow stages: seconds per item reads better


def _interval(seconds: float) -> str:
    """``0:29``, ``2:01``, ``1:02:03``."""
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def log(message: str) -> None:
    """One progress message through the ``datakit`` logger (the CLI sends it to stderr, so
    --json output stays clean; -q silences it)."""
    logging.getLogger("datakit").info(message)


def warn(message: str) -> None:
    """A message the user must see (something was moved, dropped or assumed), at WARNING:
    shown even with -q."""
    logging.getLogger("datakit").warning(message)


def iterate(iterable: Iterable[T], **kwargs) -> Iterator[T]:
    """Iterate with progress; convenience for ``for x in iterate(xs, desc=...)``."""
    yield from progress(iterable, **kwargs)
