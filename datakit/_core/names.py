"""Names are names, not paths: one check for every name that becomes a file or folder.

Study, arm, ingest and manifest names become file and folder names (``runs/<arm>``,
``manifests/<ingest>-<hash>.parquet``, ``<name>.parquet``). A name with a path separator,
``.``/``..`` or control characters would write (or delete) somewhere else, so every name is
checked here, and every path derived from one is checked with :func:`inside`.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from datakit.errors import BadName, OutsideFolder

MAX_NAME = 100
_ALLOWED = re.compile(r"[A-Za-z0-9_.+=-]+")


def check_name(name: object, what: str) -> str:
    """Return ``name`` if it is a safe file/folder name, else raise :class:`BadName`.

    Args:
        name: the candidate.
        what: what it names, for the message (e.g. ``"arm name"``, ``"--name"``).
    """
    if not isinstance(name, str) or not name:
        raise BadName(f"The {what} must be a non-empty string, got {printable(repr(name))}.")
    if name in (".", "..") or not _ALLOWED.fullmatch(name) or name.startswith("."):
        raise BadName(f"The {what} {printable(repr(name))} cannot name a file or folder: use "
                      "letters, digits and _ . + = - (no path separators, no leading dot).")
    if len(name) > MAX_NAME:
        raise BadName(f"The {what} is {len(name)} characters long; use at most {MAX_NAME}.")
    return name


def inside(base: str | os.PathLike, path: str | os.PathLike, what: str = "path") -> Path:
    """Return ``path`` if it stays inside ``base`` once resolved, else raise :class:`OutsideFolder`.

    Both are resolved (symlinks and ``..`` followed), so neither a crafted name nor a link
    in the folder can send a write, or a deletion, elsewhere. ``path`` may equal ``base``'s
    child but not ``base`` itself.
    """
    b, p = Path(base).resolve(), Path(path).resolve()
    if p == b or b not in p.parents:
        raise OutsideFolder(f"The {what} {printable(str(path))} would be outside {b}; "
                            "datakit only writes inside the folder it was given.")
    return Path(path)


def printable(text: str) -> str:
    """``text`` with control characters (terminal escape sequences among them) escaped."""
    return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii")
                   for c in str(text))


def describe_os_error(e: OSError) -> str:
    """``reason: path`` for an OSError, escaped for the terminal."""
    where = e.filename if e.filename is not None else ""
    return printable(f"{e.strerror or e}{': ' + str(where) if where else ''}")
