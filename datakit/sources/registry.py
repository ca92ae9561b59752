"""The sources by name: ``ingest(source, ...)`` over every source, and what the data home holds of each."""
from __future__ import annotations

import os
from typing import Any, Callable

from datakit.errors import UnknownName
from datakit.manifest.model import Manifest
from datakit.sources import chars74k, mnist, svhn
from datakit.sources.chars74k import ingest_chars74k
from datakit.sources.digits import ingest_digits
from datakit.sources.fonts import ingest_fonts
from datakit.sources.home import HOME_SOURCES, get_data_home
from datakit.sources.mnist import ingest_mnist
from datakit.sources.svhn import ingest_svhn


def data_home_report(data_home: str | os.PathLike | None = None) -> dict[str, Any]:
    """The data home and, per source, its folder and whether its files are there.

    ``present`` means a plain ``datakit ingest SOURCE`` (for chars74k: with at least one
    ``--subset``) would find its files; chars74k also lists the ``subsets`` found.
    """
    home = get_data_home(data_home)
    found = {"mnist": mnist.files_present, "svhn": svhn.files_present,
             "chars74k": chars74k.subsets_present}
    sources: dict[str, Any] = {}
    for source in HOME_SOURCES:
        folder = home / source
        result = found[source](folder)
        entry: dict[str, Any] = {"path": str(folder), "present": bool(result)}
        if source == "chars74k":
            entry["subsets"] = result
        sources[source] = entry
    return {"data_home": str(home), "sources": sources}


SOURCES = ("mnist", "svhn", "chars74k", "digits", "fonts")


def source_function(source: str) -> Callable[..., Manifest]:
    """The ingest function of ``source`` (its keyword parameters are the source's options)."""
    if source == "mnist":
        return ingest_mnist
    if source == "svhn":
        return ingest_svhn
    if source == "chars74k":
        return ingest_chars74k
    if source == "digits":
        return ingest_digits
    if source == "fonts":
        return ingest_fonts
    raise UnknownName(f"Unknown source {source!r}; use one of: {', '.join(SOURCES)}.")


def ingest(source: str, path: str | None = None, **options: Any) -> Manifest:
    """Ingest ``source`` (one of :data:`SOURCES`) from ``path`` into a manifest.

    Without ``path``, mnist, svhn and chars74k read ``DATA_HOME/<source>/`` (see
    :func:`datakit.sources.home.get_data_home`). Options are those of the source's own
    function, e.g. ``ingest("chars74k", subset="GoodImg")`` or
    ``ingest("chars74k", "data/chars74k", subset="GoodImg")``.
    """
    func = source_function(source)
    if source in ("digits", "fonts"):  # embedded sources read no files
        return func(**options)
    return func(path, **options)
