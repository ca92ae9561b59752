"""``ingest``: one entry point over every source (the CLI's ``datakit ingest SOURCE``)."""
from __future__ import annotations

from typing import Any, Callable

from datakit.errors import UnknownName
from datakit.manifest import Manifest

SOURCES = ("mnist", "svhn", "chars74k", "digits", "fonts")


def source_function(source: str) -> Callable[..., Manifest]:
    """The ingest function of ``source`` (its keyword parameters are the source's options)."""
    if source == "mnist":
        from datakit.sources.mnist import ingest_mnist
        return ingest_mnist
    if source == "svhn":
        from datakit.sources.svhn import ingest_svhn
        return ingest_svhn
    if source == "chars74k":
        from datakit.sources.chars74k import ingest_chars74k
        return ingest_chars74k
    if source == "digits":
        from datakit.sources.digits import ingest_digits
        return ingest_digits
    if source == "fonts":
        from datakit.sources.fonts import ingest_fonts
        return ingest_fonts
    raise UnknownName(f"Unknown source {source!r}; use one of: {', '.join(SOURCES)}.")


def ingest(source: str, path: str | None = None, **options: Any) -> Manifest:
    """Ingest ``source`` (one of :data:`SOURCES`) from ``path`` into a manifest.

    Without ``path``, mnist, svhn and chars74k read ``DATA_HOME/<source>/`` (see
    :func:`datakit.data_home.get_data_home`). Options are those of the source's own
    function, e.g. ``ingest("chars74k", subset="GoodImg")`` or
    ``ingest("chars74k", "data/chars74k", subset="GoodImg")``.
    """
    func = source_function(source)
    if source in ("digits", "fonts"):  # embedded sources read no files
        return func(**options)
    return func(path, **options)
