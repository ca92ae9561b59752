"""Export a manifest to the formats people train with.

- ``hf``: a Hugging Face ``DatasetDict`` folder that ``datasets.load_from_disk`` reads,
  one split per manifest split, with features ``image`` (``Image``: PNG bytes, H×W for
  one channel, H×W×3 for three), ``label`` (``ClassLabel`` whose names are the manifest's
  class vocabulary), and the strings ``id``, ``domain``, ``subset``. Written with pyarrow
  alone (the Arrow stream files plus the JSON files ``save_to_disk`` writes), so exporting
  does not need ``datasets`` installed.
- ``imagefolder``: ``DIR/<split>/<class folder>/<id>.png``, one PNG per row, readable by
  torchvision's ``ImageFolder`` and by ``datakit ingest folder``. Class names that are
  unsafe as folder names ("/", "\\", ":", control characters, a leading "." such as "."
  and "..") are percent-escaped (``%2F``, ``%2E``...); names that differ only by case
  ("A" and "a": one folder on case-insensitive file systems) become ``upper_A`` and
  ``lower_a``. The mapping is written to ``DIR/classes.json``.

Every export writes into a temporary folder beside ``DIR`` and renames it at the end.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from datakit._core.progress import log, progress
from datakit.errors import DatakitError, UnknownName
from datakit.manifest.model import Manifest

FORMATS = ("hf", "imagefolder")


def png_bytes(image: np.ndarray) -> bytes:
    """One H×W×C uint8 image as PNG bytes (grey for one channel, RGB for three)."""
    from PIL import Image

    arr = image[..., 0] if image.shape[-1] == 1 else image
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _png_all(manifest: Manifest, rows: np.ndarray, desc: str) -> list[bytes]:
    out = []
    for start in progress(range(0, len(rows), 4096), desc=desc, unit="batch"):
        block = manifest.images(rows[start:start + 4096])
        out.extend(png_bytes(im) for im in block)
    return out


# ---------------------------------------------------------------------------------------
# Hugging Face datasets (save_to_disk layout)
# ---------------------------------------------------------------------------------------
def hf_features(classes: list[str]) -> dict[str, Any]:
    """The ``datasets`` Features of an export, as the JSON ``save_to_disk`` writes."""
    return {"image": {"_type": "Image"},
            "label": {"names": list(classes), "_type": "ClassLabel"},
            "id": {"dtype": "string", "_type": "Value"},
            "domain": {"dtype": "string", "_type": "Value"},
            "subset": {"dtype": "string", "_type": "Value"}}


def _write_hf_split(folder: Path, split: str, manifest: Manifest, rows: np.ndarray,
                    positions: np.ndarray) -> None:
    import pyarrow as pa

    table = manifest.table
    features = hf_features(manifest.vocabulary)
    images = _png_all(manifest, rows, f"export {split}")
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    arrow = pa.table({
        "image": pa.array([{"bytes": b, "path": None} for b in images], type=image_type),
        "label": pa.array(table["label"].to_numpy()[positions], type=pa.int64()),
        "id": pa.array(table["id"].astype(str).to_numpy()[positions], type=pa.string()),
        "domain": pa.array(table["domain"].astype(str).to_numpy()[positions], type=pa.string()),
        "subset": pa.array(table["subset"].astype(str).to_numpy()[positions], type=pa.string()),
    })
    info = {"description": f"datakit manifest {manifest.name} (checksum {manifest.checksum[:16]})",
            "citation": "", "homepage": "", "license": "", "features": features}
    arrow = arrow.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    folder.mkdir(parents=True)
    name = "data-00000-of-00001.arrow"
    with pa.OSFile(str(folder / name), "wb") as sink:
        with pa.ipc.new_stream(sink, arrow.schema) as writer:
            writer.write_table(arrow, max_chunksize=1000)
    (folder / "dataset_info.json").write_text(json.dumps(info, indent=2))
    fingerprint = hashlib.sha256(f"{manifest.checksum}/{split}".encode()).hexdigest()[:16]
    state = {"_data_files": [{"filename": name}], "_fingerprint": fingerprint,
             "_format_columns": None, "_format_kwargs": {}, "_format_type": None,
             "_output_all_columns": False, "_split": split}
    (folder / "state.json").write_text(json.dumps(state, indent=2))


def _split_rows(manifest: Manifest) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per split (sorted): (pixel-store rows, table positions)."""
    split = manifest.table["split"].astype(str).to_numpy()
    rows = manifest.table["row"].to_numpy()
    out = {}
    for name in sorted(set(split)):
        if not re.fullmatch(r"\w+(\.\w+)*", name):
            raise DatakitError(f"Split name {name!r} of {manifest.path.name} cannot be a Hugging "
                               "Face split name (letters, digits, _ and . only); rename it with "
                               "`datakit compose`.")
        pos = np.flatnonzero(split == name)
        out[name] = (rows[pos], pos)
    return out


def export_hf(manifest: Manifest, folder: Path) -> dict[str, int]:
    """Write ``manifest`` into ``folder`` as a DatasetDict; returns rows per split."""
    splits = _split_rows(manifest)
    folder.mkdir(parents=True)
    for name, (rows, pos) in splits.items():
        _write_hf_split(folder / name, name, manifest, rows, pos)
    (folder / "dataset_dict.json").write_text(json.dumps({"splits": list(splits)}))
    return {name: int(len(rows)) for name, (rows, _) in splits.items()}


# ---------------------------------------------------------------------------------------
# ImageFolder tree
# ---------------------------------------------------------------------------------------
_UNSAFE = re.compile(r'[\x00-\x1f/\\:*?"<>|%]')


def safe_name(name: str) -> str:
    """``name`` usable as one folder or file name on any file system (percent-escaped)."""
    out = _UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", name)
    if out.startswith(".") or out.endswith((" ", ".")):
        out = "%2E" + out[1:] if out.startswith(".") else out[:-1] + f"%{ord(out[-1]):02X}"
    return out or "%00"


def class_folder_names(classes: list[str]) -> dict[str, str]:
    """Class name -> folder name: escaped, and unique even where the file system ignores case
    (Chars74K's "A" and "a" become "upper_A" and "lower_a"; other clashes get "_2", "_3"...)."""
    folded: dict[str, list[str]] = {}
    for c in classes:
        folded.setdefault(safe_name(c).lower(), []).append(c)
    out: dict[str, str] = {}
    for key, names in folded.items():
        for k, c in enumerate(names):
            if len(names) == 1:
                out[c] = safe_name(c)
            elif c.isupper():
                out[c] = "upper_" + safe_name(c)
            elif c.islower():
                out[c] = "lower_" + safe_name(c)
            else:
                out[c] = f"{safe_name(c)}_{k + 1}"
    return out


def export_imagefolder(manifest: Manifest, folder: Path) -> dict[str, int]:
    """Write ``DIR/<split>/<class folder>/<id>.png``; returns rows per split."""
    table = manifest.table
    folders = class_folder_names(manifest.vocabulary)
    split = table["split"].astype(str).to_numpy()
    names = np.asarray([folders[c] for c in manifest.vocabulary], dtype=object)
    class_dir = names[table["label"].to_numpy()]
    files = [safe_name(i.replace("/", "_")) + ".png" for i in table["id"].astype(str)]
    rows = table["row"].to_numpy()
    folder.mkdir(parents=True)
    for start in progress(range(0, len(rows), 4096), desc="export", unit="batch"):
        block = manifest.images(rows[start:start + 4096])
        for k, im in enumerate(block):
            i = start + k
            d = folder / safe_name(split[i]) / class_dir[i]
            d.mkdir(parents=True, exist_ok=True)
            (d / files[i]).write_bytes(png_bytes(im))
    (folder / "classes.json").write_text(json.dumps(
        {"classes": manifest.vocabulary, "folders": [folders[c] for c in manifest.vocabulary],
         "geometry": manifest.geometry.to_dict(), "manifest": str(manifest.path)}, indent=2))
    return {s: int((split == s).sum()) for s in sorted(set(split))}


def export(manifest: Manifest, out: str | os.PathLike, fmt: str = "hf", *,
           overwrite: bool = False) -> dict[str, Any]:
    """Export ``manifest`` to ``out`` as ``hf`` (Hugging Face DatasetDict) or ``imagefolder``.

    The folder is written beside ``out`` and renamed into place at the end. Returns a
    summary: ``{"out", "format", "splits": {split: rows}, "classes"}``.
    """
    if fmt not in FORMATS:
        raise UnknownName(f"Unknown export format {fmt!r}; use one of: {', '.join(FORMATS)}.")
    out = Path(out)
    if out.exists() and not overwrite:
        raise DatakitError(f"{out} already exists. Choose another --out or pass --overwrite.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"Exporting {manifest.name} ({len(manifest)} images) as {fmt} to {out}")
    try:
        splits = (export_hf if fmt == "hf" else export_imagefolder)(manifest, tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"out": str(out), "format": fmt, "manifest": str(manifest.path), "splits": splits,
            "classes": manifest.vocabulary}
