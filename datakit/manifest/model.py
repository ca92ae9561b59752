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

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from datakit._core.version import __version__
from datakit.errors import ManifestError

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
            self._table_checksum = table_checksum(self.table, like=self.meta.get("table_checksum"))
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

    def checked_images(self, positions: np.ndarray) -> np.ndarray:
        """Pixels of the table rows at ``positions`` (0..len-1), each checked against the
        sha256 its row records: for readers that read every pixel anyway (compose, export,
        label issues), where the check costs little beside the decode.

        Raises:
            ManifestError: a row's pixels differ from its sha256 (the store was changed).
        """
        positions = np.asarray(positions, dtype=np.int64)
        images = self.images(self.table["row"].to_numpy()[positions])
        check_pixels(self, images, self.table["sha256"].to_numpy()[positions],
                     self.table["id"].to_numpy()[positions])
        return images

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


def _spot_rows(n: int, k: int) -> np.ndarray:
    """Up to ``k`` evenly spaced indices in 0..n-1, first and last included."""
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(np.int64)) if n else \
        np.zeros(0, np.int64)


def pixel_sha256(pixels: np.ndarray) -> list[str]:
    """sha256 of each image's decoded pixel bytes (exact-duplicate key)."""
    flat = np.ascontiguousarray(pixels).reshape(len(pixels), -1)
    return [hashlib.sha256(r.tobytes()).hexdigest() for r in flat]


def check_pixels(m: "Manifest", images: np.ndarray, sha256: Iterable[str],
                 ids: Iterable[str]) -> None:
    """Raise :class:`ManifestError` when ``images`` differ from the ``sha256`` their rows
    (named by ``ids``) record: the pixel store of ``m`` was changed after it was written."""
    for got, want, row_id in zip(pixel_sha256(images), sha256, ids):
        if got != want:
            raise ManifestError(
                f"Manifest {m.path}: the pixels of row {str(row_id)!r} differ from the sha256 "
                "the row records, so its pixel store was changed after it was written. Run "
                f"`datakit verify {m.path}` to see every changed row, and re-create the manifest.")


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


#: Prefix of a table checksum of every column's values (:func:`table_checksum`); a recorded
#: checksum without it is of the table's CSV rendering (manifests written before it).
TABLE_CHECKSUM_V2 = "v2:"


def table_checksum(table: pd.DataFrame, like: str | None = None) -> str:
    """sha256 of every cell of the table (recorded in the sidecar; checked on every read).

    Columns are hashed by value, whatever their dtype (integers as int64, floats as float64,
    everything else as text, with a missing-value mask): a Parquet round trip that turns a
    column into a category or int32 into int64 reads the same. ``like``: a recorded checksum
    to compare with; one without :data:`TABLE_CHECKSUM_V2` was made from the table's CSV
    rendering (MNIST's 70,000-row table: 0.26 CPU-s that way, 0.09 by value), and is
    recomputed that way.
    """
    if like is not None and not like.startswith(TABLE_CHECKSUM_V2):
        return hashlib.sha256(table.to_csv(index=False).encode()).hexdigest()
    h = hashlib.sha256(f"{len(table)}".encode())
    for name in table.columns:
        col = table[name]
        h.update(b"\x00" + str(name).encode("utf-8", "surrogatepass") + b"\x00")
        kind = col.dtype.kind if not isinstance(col.dtype, pd.CategoricalDtype) else "O"
        missing = col.isna().to_numpy()
        h.update(np.packbits(missing).tobytes())
        if kind in "biu" and not missing.any():  # (a nullable integer column with gaps: as text)
            h.update(b"i" + np.ascontiguousarray(col.to_numpy(np.int64)).tobytes())
        elif kind == "f":
            h.update(b"f" + np.ascontiguousarray(col.to_numpy(np.float64)).tobytes())
        else:
            values = col.to_numpy(dtype=object)
            if missing.any():
                values = np.where(missing, "", values)
            text = [v if type(v) is str else str(v) for v in values]
            h.update(b"s" + np.array([len(t) for t in text], dtype=np.int64).tobytes())
            h.update("".join(text).encode("utf-8", "surrogatepass"))
    return TABLE_CHECKSUM_V2 + h.hexdigest()


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
    return __version__
