"""A run directory read for the audit: its config, its manifest and its generated samples, checked."""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from datakit._core.progress import warn
from datakit.errors import DatakitError, RunDirError
from datakit.manifest.model import Manifest
from datakit.manifest.read import read_manifest


@dataclass
class RunInputs:
    """What the audit reads from a run directory."""

    run_dir: Path
    config: dict[str, Any]
    images: np.ndarray
    labels: np.ndarray
    manifest: Manifest
    conditional: bool


def run_directory(run_dir: str | os.PathLike) -> Path:
    """``run_dir`` as a Path; :class:`RunDirError` when it is not a folder."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"Run directory {run_dir} does not exist. "
                          "Pass the folder written by `datakit train`.")
    return run_dir


def read_config(run_dir: Path) -> dict[str, Any]:
    """A run's config.json (its settings and training manifest); :class:`RunDirError` when it
    is missing or not JSON."""
    cfg_path = run_dir / "config.json"
    if not cfg_path.exists():
        raise RunDirError(f"{cfg_path} is missing, so the run's manifest is unknown. "
                          "Pass a run directory written by `datakit train`.")
    try:
        config = json.loads(cfg_path.read_text())
    except ValueError as e:
        raise RunDirError(f"{cfg_path} is not valid JSON ({e}).") from e
    if not isinstance(config, dict):
        raise RunDirError(f"{cfg_path} holds a JSON {type(config).__name__}, not an object of "
                          "settings; pass a run directory written by `datakit train`.")
    return config


#: The most bytes generated.npz may inflate to (its arrays as declared in the zip): 10,000
#: images of 256×256×3 are 2 GB; more is not a run's samples (or is a zip bomb).
MAX_GENERATED_BYTES = 4 << 30


def read_generated(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """generated.npz's ``images`` and ``labels`` as stored; :class:`RunDirError` when the file
    is missing, unreadable or lacks one of them."""
    gen_path = run_dir / "generated.npz"
    if not gen_path.exists():
        raise RunDirError(f"{gen_path} is missing: the run has no final samples to audit. "
                          "Let `datakit train` finish (it writes generated.npz last).")
    try:
        with zipfile.ZipFile(gen_path) as zf:  # zipfile never reads past a member's declared size
            inflated = sum(i.file_size for i in zf.infolist())
        if inflated > MAX_GENERATED_BYTES:
            raise RunDirError(f"{gen_path} declares {inflated:,} bytes of arrays, more than the "
                              f"{MAX_GENERATED_BYTES:,}-byte limit for a run's samples; refusing "
                              "to load it. Write fewer samples (--n-generate).")
        with np.load(gen_path, allow_pickle=False) as z:
            return np.asarray(z["images"]), np.asarray(z["labels"])
    except KeyError as e:
        raise RunDirError(f"{gen_path} lacks the array {e}; it needs `images` and `labels`.") from e
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise RunDirError(f"{gen_path} cannot be read ({e}).") from e


def read_run_manifest(run_dir: Path, config: dict[str, Any]) -> Manifest:
    """The training manifest config.json names; :class:`RunDirError` when it cannot be read."""
    name = config.get("manifest")
    if not isinstance(name, str) or not name:
        raise RunDirError(f"{run_dir / 'config.json'} does not name the training manifest: its "
                          f"\"manifest\" is {name!r}, not a path to a .parquet file. Pass a run "
                          "directory written by `datakit train`.")
    try:
        return read_manifest(name)
    except DatakitError as e:
        raise RunDirError(f"The training manifest named in {run_dir / 'config.json'} cannot be "
                          f"read: {e}") from e


def load_run(run_dir: str | os.PathLike) -> RunInputs:
    """Read config.json, generated.npz and the training manifest of a run, checking they agree."""
    run_dir = run_directory(run_dir)
    cfg_path = run_dir / "config.json"
    config = read_config(run_dir)
    if not config.get("manifest"):
        raise RunDirError(f"{cfg_path} does not name the training manifest (key \"manifest\").")
    gen_path = run_dir / "generated.npz"
    images, labels = read_generated(run_dir)
    manifest = read_run_manifest(run_dir, config)
    if not isinstance(config.get("manifest_checksum"), str):
        raise RunDirError(f"{cfg_path} records no manifest_checksum, so nothing shows that "
                          f"{manifest.path} is the manifest the run was trained on. Audit a run "
                          "written by `datakit train`, or add the manifest's checksum "
                          "(its sidecar's \"checksum\").")
    if config["manifest_checksum"] != manifest.checksum:
        raise RunDirError(f"The manifest {manifest.path} has changed since the run was trained "
                          f"(checksum differs from {cfg_path}); audit against the original manifest.")
    if images.ndim == 3:
        images = images[..., None]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != manifest.geometry.shape:
        raise RunDirError(f"{gen_path} holds images of {images.dtype} {images.shape}; expected uint8 "
                          f"N×{'×'.join(map(str, manifest.geometry.shape))} (the manifest's geometry).")
    labels = _check_labels(labels, gen_path)
    if len(labels) != len(images):
        raise RunDirError(f"{gen_path} has {len(images)} images but {len(labels)} labels.")
    bad = labels[(labels < -1) | (labels >= len(manifest.vocabulary))]
    if len(bad):
        raise RunDirError(f"{gen_path} has label {int(bad[0])}, outside the manifest's "
                          f"{len(manifest.vocabulary)} classes (0..{len(manifest.vocabulary) - 1}, "
                          "or -1 for unconditional samples).")
    if len(images) < 2:
        raise RunDirError(f"{gen_path} holds {len(images)} image(s); the audit needs at least 2.")
    conditional = bool(config.get("conditional", bool((labels >= 0).all())))
    unlabelled = int((labels == -1).sum())
    if conditional and unlabelled:
        warn(f"{gen_path}: {unlabelled:,} of {len(labels):,} images of this conditional run "
             "have label -1 (no class); the per-class checks leave them out.")
    return RunInputs(run_dir, config, images, labels, manifest, conditional)


def _check_labels(labels: np.ndarray, gen_path: Path) -> np.ndarray:
    """generated.npz's labels: one integer per image (shape (N,)), no NaN, as int64."""
    if labels.ndim != 1:
        raise RunDirError(f"{gen_path} holds labels of shape {labels.shape}; expected one label "
                          "per image, shape (N,). Write them with labels.reshape(-1).")
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all() or (labels != np.round(labels)).any():
            raise RunDirError(f"{gen_path} holds labels that are NaN, infinite or not whole "
                              "numbers; expected class indices (int64, -1 for unconditional).")
    elif labels.dtype.kind not in "iu":
        raise RunDirError(f"{gen_path} holds labels of type {labels.dtype}; expected int64 "
                          "class indices.")
    if labels.size and labels.dtype.kind in "uf" and labels.max() > np.iinfo(np.int64).max:
        # astype would wrap 2**64-1 to -1, an "unconditional" label
        raise RunDirError(f"{gen_path} holds label {labels.max()}, larger than any class "
                          "index; expected int64 class indices (-1 for unconditional).")
    return labels.astype(np.int64)
