"""``verify``: recompute everything a manifest records about itself and say what differs.

:func:`datakit.manifest.read_manifest` makes the cheap checks on every read (store header,
row range, table checksum, a few rows' sha256) and stops at the first failure. ``verify``
goes through all of it: the sha256 of every row's pixels against the table, the table
checksum and the content checksum against the sidecar, and lists every difference.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from datakit._core.names import describe_os_error
from datakit.manifest.model import (
    COLUMNS,
    Geometry,
    content_checksum,
    manifest_paths,
    pixel_sha256,
    table_checksum,
)
from datakit.manifest.read import not_a_manifest

CHUNK = 4096  # rows hashed at a time: memory stays flat for large stores


@dataclass
class VerifyResult:
    """What :func:`verify_manifest` found: ``problems`` is empty for an intact manifest."""

    path: Path
    rows: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_manifest(path: str | os.PathLike) -> VerifyResult:
    """Recompute the per-row sha256 of the pixels and the recorded checksums of a manifest."""
    why = not_a_manifest(path)
    if why:  # a folder or another kind of file: one sentence, not three unreadable files
        return VerifyResult(Path(path), problems=[why])
    parquet, sidecar, store = manifest_paths(path)
    result = VerifyResult(parquet)
    problems = result.problems
    journal = parquet.with_name(f".{parquet.name[: -len('.parquet')]}.commit")
    if journal.exists():
        problems.append(f"an interrupted write left {journal.name}; reading the manifest repairs it")
    meta, table, pixels = _load(parquet, sidecar, store, problems)
    if meta is None or table is None or pixels is None:
        return result
    result.rows = len(table)
    try:
        geometry = Geometry.from_dict(meta["geometry"])
    except (KeyError, TypeError, ValueError):
        problems.append(f"the sidecar {sidecar.name} has no valid geometry")
        geometry = None
    if meta.get("rows") != len(table):
        problems.append(f"the table has {len(table)} rows, the sidecar says {meta.get('rows')}")
    if pixels.dtype != np.uint8 or pixels.ndim != 4 or (
            geometry and tuple(pixels.shape[1:]) != geometry.shape):
        problems.append(f"the pixel store holds {pixels.dtype} {pixels.shape}, the sidecar's "
                        f"geometry is {geometry.shape if geometry else '?'}")
        return result
    if "store_rows" in meta and meta["store_rows"] != len(pixels):
        problems.append(f"the pixel store holds {len(pixels)} images, the sidecar says "
                        f"{meta['store_rows']}")
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        problems.append(f"the table lacks the columns {', '.join(missing)}")
        return result
    if not isinstance(meta.get("table_checksum"), str):
        problems.append(f"the sidecar {sidecar.name} records no table_checksum (the table "
                        "cannot be checked)")
    elif meta["table_checksum"] != table_checksum(table, like=meta["table_checksum"]):
        problems.append("the table checksum differs from the sidecar's (the table was changed)")
    rows = table["row"].to_numpy()
    if not np.issubdtype(rows.dtype, np.integer) or (len(rows) and (
            rows.min() < 0 or rows.max() >= len(pixels))):
        problems.append(f"`row` values run outside the pixel store (0..{len(pixels) - 1})")
        return result
    bad = _bad_rows(table, pixels)
    if bad:
        shown = ", ".join(str(i) for i in bad[:10]) + (" ..." if len(bad) > 10 else "")
        problems.append(f"{len(bad)} row(s) whose pixels do not match their sha256: table rows {shown}")
    if meta.get("checksum") and content_checksum(table, pixels) != meta["checksum"]:
        problems.append("the content checksum differs from the sidecar's")
    return result


def _load(parquet: Path, sidecar: Path, store: Path, problems: list[str]):
    meta = table = pixels = None
    try:
        meta = json.loads(sidecar.read_text())
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        problems.append(f"the sidecar {sidecar} cannot be read ({_why(e)})")
        meta = None
    try:
        table = pd.read_parquet(parquet)
    except Exception as e:  # pyarrow raises several types for a corrupt file
        problems.append(f"the table {parquet} cannot be read ({_why(e)})")
    try:
        pixels = np.load(store, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        problems.append(f"the pixel store {store} cannot be read ({_why(e)})")
    return meta, table, pixels


def _why(e: Exception) -> str:
    return describe_os_error(e) if isinstance(e, OSError) else str(e)


def _bad_rows(table: pd.DataFrame, pixels: np.ndarray) -> list[int]:
    """Table positions whose pixels' sha256 is not the one recorded."""
    rows, want = table["row"].to_numpy(), table["sha256"].to_numpy()
    bad: list[int] = []
    for start in range(0, len(rows), CHUNK):
        got = pixel_sha256(pixels[rows[start:start + CHUNK]])
        bad.extend(start + i for i, (a, b) in enumerate(zip(got, want[start:start + CHUNK])) if a != b)
    return bad
