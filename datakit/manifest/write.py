"""Writing a manifest: the table, its sidecar (with statistics) and the pixel store, switched over together."""
from __future__ import annotations

import datetime as _dt
import os
import sys
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from datakit._core.names import check_name
from datakit._core.progress import progress
from datakit.errors import ManifestError
from datakit.manifest.model import (
    COLUMNS,
    DOMAINS,
    SCHEMA_VERSION,
    Geometry,
    Manifest,
    _json_default,
    _version,
    content_checksum,
    manifest_paths,
    pixel_sha256,
    table_checksum,
)
from datakit.manifest.stats import compute_stats
from datakit.manifest.store import StoreReader
from datakit.manifest.switch import ManifestWriter


def _validate(table: pd.DataFrame, pixels: np.ndarray) -> None:
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ManifestError(f"Cannot write a manifest without the columns {', '.join(missing)}.")
    if pixels.dtype != np.uint8 or pixels.ndim != 4:
        raise ManifestError(
            f"The pixel store must be uint8 N×H×W×C, got {pixels.dtype} with shape {pixels.shape}.")
    if len(table) == 0:
        raise ManifestError("Refusing to write an empty manifest: no images were selected.")
    rows = table["row"].to_numpy()
    if rows.min() < 0 or rows.max() >= len(pixels):
        raise ManifestError(
            f"Row indices run outside the pixel store (0..{len(pixels) - 1}).")
    if not table["id"].is_unique:
        dup = table["id"][table["id"].duplicated()].iloc[0]
        raise ManifestError(f"Image ids must be unique; {dup!r} appears more than once.")
    bad = sorted(set(table["domain"]) - set(DOMAINS))
    if bad:
        raise ManifestError(f"Unknown domain(s) {bad}; use one of {', '.join(DOMAINS)}.")


def write_manifest(path: str | os.PathLike, table: pd.DataFrame, pixels: np.ndarray,
                   meta: dict[str, Any] | None = None, *, compute_statistics: bool = True,
                   classes: list[str] | None = None) -> Manifest:
    """Write a manifest atomically and return it, opened.

    Args:
        path: where to write (``X.parquet`` or ``X``); the sidecar and store go beside it.
        table: one row per image with at least :data:`COLUMNS`; ``row`` indexes ``pixels``.
        pixels: uint8 N×H×W×C.
        meta: extra sidecar fields (``command``, ``inputs``, ``skipped``, ``parents``,
            ``operations``, ``seed``, ``config``...).
        compute_statistics: store :func:`datakit.manifest.stats.compute_stats` in the sidecar.
        classes: the class vocabulary in label order (label i is ``classes[i]``); inferred
            from the table when omitted.

    Nothing is left behind if writing fails, and a manifest of the same name is replaced
    atomically, one writer at a time (see :mod:`datakit.manifest.switch`).
    """
    parquet = manifest_paths(path)[0]
    check_name(parquet.name[: -len(".parquet")], "manifest name")
    table, full = _table_and_sidecar(parquet, table, pixels, meta, compute_statistics, classes)
    with ManifestWriter(parquet) as writer:  # OSError (disk full, read-only) is the caller's to word
        writer.write_store(pixels)
        writer.commit(table, full, default=_json_default)
        full["write_id"] = writer.write_id
    return Manifest(parquet, table, full)


def write_manifest_chunks(path: str | os.PathLike, table: pd.DataFrame,
                          chunks: Iterable[np.ndarray], image_shape: tuple[int, int, int],
                          meta: dict[str, Any] | None = None, *, compute_statistics: bool = True,
                          classes: list[str] | None = None) -> Manifest:
    """:func:`write_manifest` for a pixel store written as it is made: ``chunks`` yields
    uint8 images in table order (table row i is image i), each chunk written straight into
    the new store, so memory holds one chunk, never the whole output. The table's ``sha256``
    and ``row`` columns are filled from the chunks. The checksum and statistics then read
    the written store back a chunk at a time (:class:`~datakit.manifest.store.StoreReader`:
    its pages do not stay in this process). Same files, byte for byte, as write_manifest.
    """
    parquet = manifest_paths(path)[0]
    check_name(parquet.name[: -len(".parquet")], "manifest name")
    shape = (len(table), *(int(x) for x in image_shape))
    with ManifestWriter(parquet) as writer:
        hashes = _write_store_chunks(writer.store_tmp, chunks, shape)
        pixels = StoreReader(writer.store_tmp)  # read back a chunk at a time, pages not kept
        table = table.assign(sha256=hashes, row=np.arange(len(table), dtype=np.int64))
        table, full = _table_and_sidecar(parquet, table, pixels, meta, compute_statistics, classes)
        writer.commit(table, full, default=_json_default)
        full["write_id"] = writer.write_id
    return Manifest(parquet, table, full)


def _write_store_chunks(store: Path, chunks: Iterable[np.ndarray], shape: tuple[int, ...]
                        ) -> list[str]:
    """Write a .npy of ``shape`` (uint8) from ``chunks`` in order; returns each image's sha256."""
    hashes: list[str] = []
    # The chunks are made as they are asked for (decoded, converted): this is the long part
    # of a composition or a folder ingest.
    with open(store, "wb") as f, progress(total=shape[0], desc="writing pixels", unit="img") as bar:
        np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False,
                                                 "shape": shape})
        for chunk in chunks:
            if chunk.dtype != np.uint8 or tuple(chunk.shape[1:]) != shape[1:]:
                raise ManifestError(f"A pixel chunk of {chunk.dtype} {chunk.shape[1:]} images "
                                    f"does not fit a store of uint8 {shape[1:]} images.")
            if len(hashes) + len(chunk) > shape[0]:
                break
            np.ascontiguousarray(chunk).tofile(f)
            hashes += pixel_sha256(chunk)
            bar.update(len(chunk))
        else:
            if len(hashes) == shape[0]:
                return hashes
    raise ManifestError(f"The pixel chunks do not hold the table's {shape[0]} images; "
                        "nothing was written.")


def _table_and_sidecar(parquet: Path, table: pd.DataFrame, pixels: np.ndarray,
                       meta: dict[str, Any] | None, compute_statistics: bool,
                       classes: list[str] | None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The table as stored (types, column order) and the sidecar of a manifest to write."""
    table = table.reset_index(drop=True)
    _validate(table, pixels)
    for col in ("label", "row", "orig_width", "orig_height"):
        table[col] = table[col].astype(np.int64)
    for col in ("id", "dataset", "subset", "split", "domain", "class_name", "source",
                "orig_mode", "sha256"):
        table[col] = table[col].astype(str)
    ordered = COLUMNS + [c for c in table.columns if c not in COLUMNS]
    table = table[ordered]
    classes = _classes(table) if classes is None else classes

    full = dict(meta or {})
    full.setdefault("command", " ".join(["datakit"] + sys.argv[1:]) if sys.argv else "")
    full.update({
        "schema_version": SCHEMA_VERSION,
        "datakit_version": _version(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "name": parquet.name[: -len(".parquet")],
        "rows": int(len(table)),
        "geometry": Geometry(*pixels.shape[1:4]).to_dict(),
        "classes": list(classes),
        "checksum": content_checksum(table, pixels),
    })
    if compute_statistics:
        full["stats"] = compute_stats(table, pixels, classes=classes)
    full["table_checksum"] = table_checksum(table)
    full["store_rows"] = int(len(pixels))
    return table, full


def _classes(table: pd.DataFrame) -> list[str]:
    """The class vocabulary in label order, inferred from the table's label/class_name pairs."""
    pairs = table[["label", "class_name"]].drop_duplicates().sort_values("label")
    if pairs["label"].duplicated().any():
        raise ManifestError("Each label must map to exactly one class_name.")
    if len(pairs) and pairs["label"].tolist() == list(range(len(pairs))):
        return pairs["class_name"].tolist()
    classes = [None] * (int(pairs["label"].max()) + 1)
    for lab, name in zip(pairs["label"], pairs["class_name"]):
        classes[int(lab)] = name
    return [c if c is not None else f"<label {i}>" for i, c in enumerate(classes)]
