"""The manifest: one Parquet table + JSON sidecar + memory-mappable pixel store.

This is the contract between ingest, compose, train and audit (see DESIGN.md):

- ``NAME.parquet``   one row per image (columns in :data:`COLUMNS`),
- ``NAME.json``      the sidecar: schema version, command, inputs, geometry, statistics,
                     skipped files, parents and operations (for composed manifests),
- ``NAME.pixels.npy`` a uint8 array N×H×W×C at the store's canonical geometry.

Manifests are immutable: writing is atomic (temporary files, then renames, the sidecar
last), and readers check that the three files agree.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from datakit.errors import ManifestError
from datakit.names import check_name, describe_os_error
from datakit.store_reader import StoreReader

SCHEMA_VERSION = 1

#: Columns every manifest has, in this order (extra columns may follow).
COLUMNS = [
    "id", "dataset", "subset", "split", "domain", "label", "class_name", "source",
    "orig_width", "orig_height", "orig_mode", "sha256", "row",
]

DOMAINS = ("wild", "synthetic", "handwritten")

#: The 62 Chars74K classes in their label order: digits, then upper, then lower case.
CHARS62 = [str(d) for d in range(10)] + [chr(c) for c in range(ord("A"), ord("Z") + 1)] \
    + [chr(c) for c in range(ord("a"), ord("z") + 1)]


@dataclass(frozen=True)
class Geometry:
    """Canonical pixel-store geometry: every image in a manifest has this shape."""

    height: int
    width: int
    channels: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)

    def to_dict(self) -> dict[str, int]:
        return {"height": self.height, "width": self.width, "channels": self.channels}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Geometry":
        return cls(int(d["height"]), int(d["width"]), int(d["channels"]))


def manifest_paths(path: str | os.PathLike) -> tuple[Path, Path, Path]:
    """Return (parquet, sidecar, pixel store) paths for a manifest given by any of its names.

    ``path`` may be ``X.parquet``, ``X.json``, ``X.pixels.npy`` or ``X`` itself.
    """
    p = Path(path)
    name = p.name
    for suffix in (".pixels.npy", ".parquet", ".json"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    folder = p.parent  # joined, not with_name(): a bad name ("", ".") reaches check_name
    return folder / (name + ".parquet"), folder / (name + ".json"), folder / (name + ".pixels.npy")


class Manifest:
    """A manifest read from disk. Pixels are memory-mapped on first access.

    Attributes:
        path: the ``.parquet`` file.
        table: the rows (a pandas DataFrame; ``row`` indexes the pixel store).
        meta: the sidecar dictionary.
    """

    def __init__(self, path: Path, table: pd.DataFrame, meta: dict[str, Any]):
        self.path = Path(path)
        self.table = table
        self.meta = meta
        self._pixels: np.ndarray | None = None
        self._table_checksum: str | None = None

    # -- identity -------------------------------------------------------------------
    @property
    def name(self) -> str:
        return manifest_paths(self.path)[0].name[: -len(".parquet")]

    @property
    def sidecar_path(self) -> Path:
        return manifest_paths(self.path)[1]

    @property
    def pixels_path(self) -> Path:
        return manifest_paths(self.path)[2]

    @property
    def checksum(self) -> str:
        """Content checksum (rows + pixels), recorded at write time; names this manifest."""
        return self.meta["checksum"]

    @property
    def geometry(self) -> Geometry:
        return Geometry.from_dict(self.meta["geometry"])

    @property
    def stats(self) -> dict[str, Any]:
        return self.meta.get("stats", {})

    @property
    def table_checksum(self) -> str:
        """sha256 of the table as read now (compare with the sidecar's ``table_checksum``)."""
        if self._table_checksum is None:
            self._table_checksum = table_checksum(self.table)
        return self._table_checksum

    def content_key(self) -> str:
        """A key that changes when the content does: the recorded checksum, the table as read
        and the pixels of up to 256 evenly spaced rows (for caches such as the judge's)."""
        h = hashlib.sha256(f"{self.meta.get('checksum')}|{self.table_checksum}".encode())
        rows = self.table["row"].to_numpy()[_spot_rows(len(self.table), 256)]
        h.update(np.ascontiguousarray(self.pixels[rows]).tobytes())
        return h.hexdigest()

    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        g = self.geometry
        return f"<Manifest {self.name}: {len(self)} images {g.height}x{g.width}x{g.channels}>"

    # -- pixels ---------------------------------------------------------------------
    @property
    def pixels(self) -> np.ndarray:
        """The whole pixel store, memory-mapped read-only (N×H×W×C uint8)."""
        if self._pixels is None:
            try:
                self._pixels = np.load(self.pixels_path, mmap_mode="r")
            except (OSError, ValueError) as e:
                raise ManifestError(
                    f"Pixel store {self.pixels_path} cannot be read ({e}). "
                    "Re-create the manifest with `datakit ingest` or `datakit compose`.") from e
        return self._pixels

    def images(self, rows: Iterable[int] | np.ndarray | None = None) -> np.ndarray:
        """Pixels for the given table rows (default: all, in table order) as an in-memory array."""
        idx = self.table["row"].to_numpy() if rows is None else np.asarray(rows)
        if len(idx) and np.all(np.diff(idx) == 1):  # contiguous: one slice, no fancy indexing
            return np.array(self.pixels[idx[0]: idx[-1] + 1])
        return np.asarray(self.pixels[idx])

    def labels(self) -> np.ndarray:
        return self.table["label"].to_numpy(dtype=np.int64)

    def class_names(self) -> list[str]:
        """Class names ordered by label (labels are 0..K-1 in the manifest's vocabulary)."""
        pairs = self.table[["label", "class_name"]].drop_duplicates().sort_values("label")
        return pairs["class_name"].tolist()

    @property
    def vocabulary(self) -> list[str]:
        """The full class vocabulary (label -> class_name), including classes with no rows."""
        return list(self.meta.get("classes") or self.class_names())


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Read a manifest written by :func:`write_manifest`, checking its three files agree."""
    from datakit.manifest_writer import recover_if_interrupted
    parquet, sidecar, pixels = manifest_paths(path)
    recover_if_interrupted(parquet)
    if not parquet.exists() and not sidecar.exists():
        raise ManifestError(
            f"Manifest not found: {parquet}. Pass the .parquet file written by "
            "`datakit ingest` or `datakit compose`.")
    for f in (parquet, sidecar, pixels):
        if not f.exists():
            raise ManifestError(
                f"Manifest {parquet.name} is incomplete: {f} is missing. "
                "Re-create it with `datakit ingest` or `datakit compose`.")
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, ValueError) as e:
        raise ManifestError(f"Sidecar {sidecar} is not valid JSON ({e}).") from e
    try:
        table = pd.read_parquet(parquet)
    except Exception as e:  # pyarrow raises several types for a corrupt file
        raise ManifestError(f"Manifest table {parquet} cannot be read ({e}).") from e
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ManifestError(f"Manifest {parquet} lacks the columns {', '.join(missing)}.")
    if not isinstance(meta, dict) or meta.get("rows") != len(table):
        raise ManifestError(
            f"Manifest {parquet} has {len(table)} rows but its sidecar {sidecar.name} "
            f"says {meta.get('rows') if isinstance(meta, dict) else None}; the files come from "
            "different writes. Re-create it.")
    manifest = Manifest(parquet, table, meta)
    check_invariants(manifest)
    return manifest


SPOT_CHECK_ROWS = 16


def check_invariants(m: Manifest) -> None:
    """The cheap checks every read makes: the store's header against the sidecar's geometry
    and row count, the ``row`` column's range, the table checksum, and the sha256 of a few
    evenly spaced rows against the table (``datakit verify`` checks every row).
    """
    what = f"Manifest {m.path}"
    fix = f"Run `datakit verify {m.path}` to see what differs, and re-create the manifest."
    try:
        geometry = Geometry.from_dict(m.meta["geometry"])
    except (KeyError, TypeError, ValueError):
        raise ManifestError(f"{what}: its sidecar {m.sidecar_path.name} has no valid geometry. "
                            + fix) from None
    px = m.pixels
    store_rows = m.meta.get("store_rows", len(px))
    if px.dtype != np.uint8 or px.ndim != 4 or tuple(px.shape[1:]) != geometry.shape \
            or len(px) != store_rows:
        raise ManifestError(
            f"{what}: its pixel store {m.pixels_path.name} holds {px.dtype} {px.shape} but the "
            f"sidecar says uint8 ({store_rows}, {geometry.height}, {geometry.width}, "
            f"{geometry.channels}); the files come from different writes. " + fix)
    rows = m.table["row"]
    if not pd.api.types.is_integer_dtype(rows) or (len(rows) and (
            rows.min() < 0 or rows.max() >= len(px))):
        raise ManifestError(f"{what}: its `row` column points outside the pixel store "
                            f"(0..{len(px) - 1}). " + fix)
    recorded = m.meta.get("table_checksum")
    if recorded is not None and m.table_checksum != recorded:
        raise ManifestError(f"{what}: its table was changed after it was written (the table "
                            "checksum in its sidecar differs). " + fix)
    sample = _spot_rows(len(m.table), SPOT_CHECK_ROWS)
    got = pixel_sha256(m.pixels[m.table["row"].to_numpy()[sample]])
    want = m.table["sha256"].to_numpy()[sample]
    bad = [int(i) for i, a, b in zip(sample, got, want) if a != b]
    if bad:
        raise ManifestError(f"{what}: its pixel store does not hold the images its table "
                            f"describes (table row {bad[0]} differs). " + fix)


def _spot_rows(n: int, k: int) -> np.ndarray:
    """Up to ``k`` evenly spaced indices in 0..n-1, first and last included."""
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(np.int64)) if n else \
        np.zeros(0, np.int64)


def pixel_sha256(pixels: np.ndarray) -> list[str]:
    """sha256 of each image's decoded pixel bytes (exact-duplicate key)."""
    flat = np.ascontiguousarray(pixels).reshape(len(pixels), -1)
    return [hashlib.sha256(r.tobytes()).hexdigest() for r in flat]


def content_checksum(table: pd.DataFrame, pixels: np.ndarray) -> str:
    """A checksum of a manifest's content: its identity columns and its pixel bytes."""
    h = hashlib.sha256()
    cols = ["id", "label", "class_name", "split", "domain", "subset", "dataset", "sha256", "row"]
    h.update(table[cols].to_csv(index=False).encode())
    h.update(str(pixels.shape).encode())
    # Pixels in chunks keeps memory flat for large stores.
    step = 8192
    for i in range(0, len(pixels), step):
        h.update(np.ascontiguousarray(pixels[i:i + step]).tobytes())
    return h.hexdigest()


def table_checksum(table: pd.DataFrame) -> str:
    """sha256 of every cell of the table (recorded in the sidecar; checked on every read)."""
    return hashlib.sha256(table.to_csv(index=False).encode()).hexdigest()


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 of a file on disk, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


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
        compute_statistics: store :func:`datakit.stats.compute_stats` in the sidecar.
        classes: the class vocabulary in label order (label i is ``classes[i]``); inferred
            from the table when omitted.

    Nothing is left behind if writing fails, and a manifest of the same name is replaced
    atomically, one writer at a time (see :mod:`datakit.manifest_writer`).
    """
    parquet = manifest_paths(path)[0]
    check_name(parquet.name[: -len(".parquet")], "manifest name")
    table, full = _table_and_sidecar(parquet, table, pixels, meta, compute_statistics, classes)
    from datakit.manifest_writer import ManifestWriter
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
    the written store back a chunk at a time (:class:`~datakit.store_reader.StoreReader`:
    its pages do not stay in this process). Same files, byte for byte, as write_manifest.
    """
    from datakit.manifest_writer import ManifestWriter
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
    with open(store, "wb") as f:
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
        from datakit.stats import compute_stats  # local import: stats imports this module
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


#: Key of the Parquet schema metadata that holds the class vocabulary and the geometry.
PARQUET_META_KEY = b"datakit"


def parquet_schema(table: pd.DataFrame, classes: list[str], geometry: dict[str, int]):
    """The table's Arrow schema with ``{"classes", "geometry", "schema_version"}`` (JSON) under
    :data:`PARQUET_META_KEY`, so a reader without the sidecar knows the label names and the
    pixel store's shape."""
    import pyarrow as pa

    schema = pa.Schema.from_pandas(table, preserve_index=False)
    extra = json.dumps({"schema_version": SCHEMA_VERSION, "classes": list(classes),
                        "geometry": dict(geometry)})
    return schema.with_metadata({**(schema.metadata or {}), PARQUET_META_KEY: extra.encode()})


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"Not JSON serialisable: {type(o).__name__}")


def _version() -> str:
    from datakit import __version__
    return __version__


def update_sidecar(manifest: Manifest, **fields: Any) -> None:
    """Rewrite a manifest's sidecar with extra fields (atomically). Content is unchanged."""
    meta = dict(manifest.meta)
    meta.update(fields)
    from datakit.atomic import atomic_write_json
    from datakit.manifest_writer import writer_lock
    try:
        with writer_lock(manifest.path):
            atomic_write_json(manifest.sidecar_path, meta, default=_json_default)
    except OSError as e:
        raise ManifestError(f"Cannot update sidecar {manifest.sidecar_path} "
                            f"({describe_os_error(e)}).") from e
    manifest.meta = meta
