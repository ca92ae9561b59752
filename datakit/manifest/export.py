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
  ``lower_a``; any name still taken (a class named ``upper_A`` too) gets ``_2``, ``_3``...,
  so every class has its own folder. Names longer than :data:`MAX_NAME_BYTES` are cut and
  end in a hash of the whole name. The mapping is written to ``DIR/classes.json``.

Every export writes into a temporary folder beside ``DIR`` and renames it at the end; the
folder holds a marker (:data:`MARKER`) saying datakit exported it. ``overwrite`` replaces
only such a folder (or an empty one), and never the folder that holds the manifest, the
current directory or one of its parents.
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

from datakit._core.atomic import temp_name
from datakit._core.names import printable
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


def _png_all(manifest: Manifest, positions: np.ndarray, desc: str) -> list[bytes]:
    out = []
    for start in progress(range(0, len(positions), 4096), desc=desc, unit="batch"):
        block = manifest.checked_images(positions[start:start + 4096])
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


def _write_hf_split(folder: Path, split: str, manifest: Manifest, positions: np.ndarray) -> None:
    import pyarrow as pa

    table = manifest.table
    features = hf_features(manifest.vocabulary)
    images = _png_all(manifest, positions, f"export {split}")
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


def _split_positions(manifest: Manifest) -> dict[str, np.ndarray]:
    """Per split (sorted): its table positions."""
    split = manifest.table["split"].astype(str).to_numpy()
    out = {}
    for name in sorted(set(split)):
        if not re.fullmatch(r"\w+(\.\w+)*", name):
            raise DatakitError(f"Split name {name!r} of {manifest.path.name} cannot be a Hugging "
                               "Face split name (letters, digits, _ and . only); rename it with "
                               "`datakit compose`.")
        out[name] = np.flatnonzero(split == name)
    return out


def export_hf(manifest: Manifest, folder: Path) -> dict[str, int]:
    """Write ``manifest`` into ``folder`` as a DatasetDict; returns rows per split."""
    splits = _split_positions(manifest)
    folder.mkdir(parents=True)
    for name, pos in splits.items():
        _write_hf_split(folder / name, name, manifest, pos)
    (folder / "dataset_dict.json").write_text(json.dumps({"splits": list(splits)}))
    return {name: int(len(pos)) for name, pos in splits.items()}


# ---------------------------------------------------------------------------------------
# ImageFolder tree
# ---------------------------------------------------------------------------------------
_UNSAFE = re.compile(r'[\x00-\x1f/\\:*?"<>|%]')

#: The longest folder or file name an export writes, in UTF-8 bytes (file systems allow 255;
#: the rest is room for a "_2" suffix and the ".png").
MAX_NAME_BYTES = 200

#: Image extensions dropped from a row id before ".png" is added (no "x.png.png").
_IMAGE_SUFFIX = re.compile(r"\.(png|jpe?g|bmp|gif|tiff?|webp|ppm|pgm|pbm)$", re.IGNORECASE)


def safe_name(name: str) -> str:
    """``name`` usable as one folder or file name on any file system (percent-escaped, at
    most :data:`MAX_NAME_BYTES` bytes: a longer one is cut and ends in a hash of the whole)."""
    out = _UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", name)
    if out.startswith(".") or out.endswith((" ", ".")):
        out = "%2E" + out[1:] if out.startswith(".") else out[:-1] + f"%{ord(out[-1]):02X}"
    out = out or "%00"
    if len(out.encode("utf-8")) > MAX_NAME_BYTES:
        digest = "~" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        cut = out.encode("utf-8")[: MAX_NAME_BYTES - len(digest)].decode("utf-8", "ignore")
        out = cut.rstrip(". ") + digest
    return out


def unique_names(wanted: list[str]) -> list[str]:
    """``wanted`` with later repeats renamed ``NAME_2``, ``NAME_3``... so that no two are the
    same, even where the file system ignores case (the first of each keeps its name; a new
    name is one nobody wanted)."""
    taken = {w.casefold() for w in wanted}
    seen: set[str] = set()
    out = []
    for w in wanted:
        name, k = w, 1
        while name.casefold() in seen:
            k += 1
            name = f"{w}_{k}"
            if name.casefold() in taken:
                name = w  # another name wants this one: try the next number
        seen.add(name.casefold())
        out.append(name)
    return out


def class_folder_names(classes: list[str]) -> dict[str, str]:
    """Class name -> folder name: escaped, and unique even where the file system ignores case
    (Chars74K's "A" and "a" become "upper_A" and "lower_a"; any other clash, a class named
    "upper_A" included, gets "_2", "_3"...). Distinct classes never share a folder."""
    folded: dict[str, list[str]] = {}
    for c in classes:
        folded.setdefault(safe_name(c).casefold(), []).append(c)
    wanted: dict[str, str] = {}
    for names in folded.values():
        for c in names:
            if len(names) == 1:
                wanted[c] = safe_name(c)
            elif c.isupper():
                wanted[c] = safe_name("upper_" + c)
            elif c.islower():
                wanted[c] = safe_name("lower_" + c)
            else:
                wanted[c] = safe_name(c)
    # Names a class has by itself first, so "upper_A" the class keeps its own name and the
    # prefixed "A" moves aside, whatever the vocabulary order.
    order = sorted(classes, key=lambda c: (wanted[c] != safe_name(c), classes.index(c)))
    unique = dict(zip(order, unique_names([wanted[c] for c in order])))
    return {c: unique[c] for c in classes}


def row_file_names(ids: list[str], folders: list[str]) -> list[str]:
    """One PNG file name per row: its id ("/" as "_", an image extension dropped), escaped,
    unique within its folder."""
    stems = [safe_name(_IMAGE_SUFFIX.sub("", i).replace("/", "_")) for i in ids]
    by_folder: dict[str, list[int]] = {}
    for k, f in enumerate(folders):
        by_folder.setdefault(f, []).append(k)
    out = [""] * len(ids)
    for members in by_folder.values():
        for k, name in zip(members, unique_names([stems[k] for k in members])):
            out[k] = name + ".png"
    return out


def export_imagefolder(manifest: Manifest, folder: Path) -> dict[str, int]:
    """Write ``DIR/<split>/<class folder>/<id>.png``; returns rows per split."""
    table = manifest.table
    folders = class_folder_names(manifest.vocabulary)
    split = table["split"].astype(str).to_numpy()
    names = np.asarray([folders[c] for c in manifest.vocabulary], dtype=object)
    class_dir = names[table["label"].to_numpy()]
    dirs = [f"{safe_name(s)}/{d}" for s, d in zip(split, class_dir)]
    files = row_file_names(list(table["id"].astype(str)), dirs)
    positions = np.arange(len(table))
    folder.mkdir(parents=True)
    for start in progress(range(0, len(positions), 4096), desc="export", unit="batch"):
        block = manifest.checked_images(positions[start:start + 4096])
        for k, im in enumerate(block):
            i = start + k
            d = folder / dirs[i]
            d.mkdir(parents=True, exist_ok=True)
            (d / files[i]).write_bytes(png_bytes(im))
    (folder / "classes.json").write_text(json.dumps(
        {"classes": manifest.vocabulary, "folders": [folders[c] for c in manifest.vocabulary],
         "geometry": manifest.geometry.to_dict(), "manifest": str(manifest.path)}, indent=2))
    return {s: int((split == s).sum()) for s in sorted(set(split))}


# ---------------------------------------------------------------------------------------
# the export folder: written aside, marked, replaced only when datakit exported it
# ---------------------------------------------------------------------------------------
#: Written into every export folder; ``overwrite`` replaces only a folder that holds it.
MARKER = ".datakit-export"


def _check_replaceable(out: Path, manifest: Manifest) -> None:
    """Refuse to replace ``out`` unless datakit exported it (or it is empty), and never when
    it holds the manifest, is the current directory or one of its parents."""
    where = out.resolve()
    here = Path.cwd().resolve()
    if where == here or where in here.parents:
        raise DatakitError(
            f"--out {out} is the current directory or one of its parents; --overwrite never "
            "replaces those. Pass a new folder with --out.")
    if not out.is_dir() or out.is_symlink():
        raise DatakitError(f"--out {out} exists and is not a folder, so --overwrite leaves it "
                           "alone. Move it away or pass another --out.")
    sources = [p.resolve() for p in (manifest.path, manifest.sidecar_path, manifest.pixels_path)]
    if any(where in p.parents for p in sources):
        raise DatakitError(
            f"--out {out} holds the manifest being exported ({manifest.path.name}); --overwrite "
            "would delete it. Pass a new folder with --out.")
    entries = sorted(e.name for e in os.scandir(out))
    if not entries:
        return
    if MARKER not in entries:
        raise DatakitError(
            f"--out {out} was not written by `datakit export` (it has no {MARKER} marker), so "
            "--overwrite leaves it alone. Move its files away, or pass another --out.")
    try:
        written = set(json.loads((out / MARKER).read_text())["entries"])
    except (OSError, ValueError, KeyError, TypeError):
        written = set()
    foreign = [e for e in entries if e != MARKER and e not in written]
    if foreign:
        raise DatakitError(
            f"--out {out} holds files that `datakit export` did not write "
            f"({', '.join(printable(f) for f in foreign[:5])}{', ...' if len(foreign) > 5 else ''}), "
            "so --overwrite leaves it alone. Move them away, or pass another --out.")


def export(manifest: Manifest, out: str | os.PathLike, fmt: str = "hf", *,
           overwrite: bool = False) -> dict[str, Any]:
    """Export ``manifest`` to ``out`` as ``hf`` (Hugging Face DatasetDict) or ``imagefolder``.

    The folder is written beside ``out`` and renamed into place at the end. With
    ``overwrite`` an existing ``out`` is replaced only if an earlier export wrote it (its
    :data:`MARKER`) or it is empty. Every row's pixels are checked against its sha256 as
    they are read. Returns a summary: ``{"out", "format", "splits": {split: rows}, "classes"}``.
    """
    if fmt not in FORMATS:
        raise UnknownName(f"Unknown export format {fmt!r}; use one of: {', '.join(FORMATS)}.")
    out = Path(out)
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise DatakitError(f"{out} already exists. Choose another --out or pass --overwrite.")
        _check_replaceable(out, manifest)
    target = out.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(target)
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"Exporting {manifest.name} ({len(manifest)} images) as {fmt} to {out}")
    try:
        splits = (export_hf if fmt == "hf" else export_imagefolder)(manifest, tmp)
        entries = sorted(e.name for e in os.scandir(tmp))
        (tmp / MARKER).write_text(json.dumps({"format": fmt, "manifest": str(manifest.path),
                                              "entries": entries}, indent=2) + "\n")
        if target.exists():
            os.replace(target, old)  # aside first: the old export stays whole until the switch
        os.replace(tmp, target)
    except BaseException:
        if old.exists() and not target.exists():
            os.replace(old, target)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return {"out": str(out), "format": fmt, "manifest": str(manifest.path), "splits": splits,
            "classes": manifest.vocabulary}
