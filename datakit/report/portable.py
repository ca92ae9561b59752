"""What a page (or study.json) that may be shipped on its own may hold: no absolute path of the
machine that made it, and links only within itself or to files that ship beside it.

A study's report.html and study.json are committed as examples and read elsewhere; a path
such as ``/home/someone/datakit/studies/x/runs/...`` tells a reader nothing and leaks where it
was made. :func:`relative_to_folder` rewrites the study folder's own absolute path to a
relative one; :func:`absolute_paths` and :func:`outside_links` find what is left, so that the
writer can warn and the tests can assert that nothing is.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

#: Inline data (figures, CSV downloads) and web addresses: never paths of this machine.
_INLINE = re.compile(r"data:[^\"'\s)<>]*|[a-z][a-z0-9+.-]*://[^\s\"'<>]*", re.IGNORECASE)
#: An absolute POSIX path of at least two parts (``/home/x``), not a closing tag (``</td>``),
#: a ratio (``max/min``), a relative path (``runs/a/seed0``) or a comment (``/* */``).
_POSIX = re.compile(r"(?<![\w.</~:\\-])/(?:[\w.+@-]+/)+[\w.+@-]*")
#: A Windows drive path (``C:\...`` or ``C:/...``).
_WINDOWS = re.compile(r"(?<![\w])[A-Za-z]:[\\/]+[\w.+@ -]")
_LINK = re.compile(r"""(?:href|src)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)


def absolute_paths(text: str) -> list[str]:
    """The absolute file paths in ``text`` (inline data and web addresses aside), in order."""
    text = _INLINE.sub(" ", text)
    return [m.group(0) for m in _POSIX.finditer(text)] + \
        [m.group(0) for m in _WINDOWS.finditer(text)]


def outside_links(html: str, folder: str | os.PathLike) -> list[str]:
    """Link targets (``href``, ``src``) of a page that point outside it: anything but an anchor
    (``#...``), inline data (``data:``) or a file that exists beside the page, in ``folder``."""
    out = []
    for target in _LINK.findall(html):
        if target.startswith("#") or target.lower().startswith("data:"):
            continue
        if "://" not in target and not target.startswith("/") and ".." not in Path(target).parts \
                and (Path(folder) / target).is_file():
            continue
        out.append(target)
    return out


def relative_to_folder(text: str, folder: str | os.PathLike) -> str:
    """``text`` with the folder's absolute path (as given and resolved) made relative to it."""
    for base in dict.fromkeys((str(Path(folder).resolve()), str(Path(folder).absolute()))):
        text = text.replace(base + os.sep, "").replace(base, ".")
    return text
