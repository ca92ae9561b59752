"""Reading a manifest: its three files, checked against each other and against what they record."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from datakit.errors import ManifestError
from datakit.manifest.model import (
    COLUMNS,
    Geometry,
    Manifest,
    _spot_rows,
    manifest_paths,
    pixel_sha256,
)
from datakit.manifest.switch import recover_if_interrupted


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Read a manifest written by :func:`write_manifest`, checking its three files agree."""
    parquet, sidecar, pixels = manifest_paths(path)
    recover_if_interrupted(parquet)
    why = not_a_manifest(path)
    if why:
        raise ManifestError(why)
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


def not_a_manifest(path: str | os.PathLike) -> str | None:
    """Why ``path`` names no manifest when it is a folder or a file of another kind (a sentence
    that says what to pass instead); None when it names a manifest or nothing at all."""
    p = Path(path)
    parquet, sidecar, _ = manifest_paths(p)
    if parquet.exists() or sidecar.exists():
        return None
    if p.is_dir():
        found = manifests_in(p)
        if not found:
            return (f"{p} is a folder with no manifest in it; pass a manifest's .parquet file, "
                    "written by `datakit ingest` or `datakit compose`.")
        shown = ", ".join(found[:10]) + (f" ... ({len(found)} in all)" if len(found) > 10 else "")
        return f"{p} is a folder; the manifests in it: {shown}; pass one of them."
    if p.exists():
        return (f"{p} is not a manifest: a manifest is a .parquet file with its .json sidecar "
                "and .pixels.npy pixel store beside it, as `datakit ingest` and `datakit compose` "
                "write them. Pass the .parquet file.")
    return None


def manifests_in(folder: str | os.PathLike) -> list[str]:
    """The names of the manifests directly in ``folder`` (each .parquet with its .json sidecar), sorted."""
    return sorted(p.name for p in Path(folder).glob("*.parquet")
                  if manifest_paths(p)[1].exists() and not p.name.startswith("."))


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
    if not isinstance(recorded, str):
        # Every writer records it; without it an edited table would pass unnoticed.
        raise ManifestError(f"{what}: its sidecar {m.sidecar_path.name} records no "
                            "table_checksum, so its table cannot be checked. Re-create the "
                            "manifest with `datakit ingest` or `datakit compose`.")
    if m.table_checksum != recorded:
        raise ManifestError(f"{what}: its table was changed after it was written (the table "
                            "checksum in its sidecar differs). " + fix)
    sample = _spot_rows(len(m.table), SPOT_CHECK_ROWS)
    got = pixel_sha256(m.pixels[m.table["row"].to_numpy()[sample]])
    want = m.table["sha256"].to_numpy()[sample]
    bad = [int(i) for i, a, b in zip(sample, got, want) if a != b]
    if bad:
        raise ManifestError(f"{what}: its pixel store does not hold the images its table "
                            f"describes (table row {bad[0]} differs). " + fix)
