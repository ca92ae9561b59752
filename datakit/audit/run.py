"""``audit_run``: read a run directory and its manifest, compute every audit number, write audit.json.

The returned dictionary is ``run_dir/audit/audit.json``; its shape is defined once, in
:mod:`datakit.audit.schema`.
"""
from __future__ import annotations

import json
import zipfile
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from datakit.audit import metrics
from datakit.audit.judge import JudgeConfig
from datakit.audit.schema import write_audit
from datakit.errors import DatakitError, RunDirError
from datakit.manifest import Manifest, read_manifest
from datakit.progress import log


@dataclass
class AuditConfig:
    """Settings of one audit; saved into audit.json."""

    k: int = 5                         # k of the k-NN balls (precision/recall/density/coverage)
    max_reference: int = 10000         # training images used as the reference (seeded sample)
    max_generated: int = 10000         # generated samples audited (seeded sample)
    kid_subset_size: int = 1000
    kid_subsets: int = 50
    bootstrap: int = 100               # bootstrap replicates (FD interval, per-class floor tests)
    min_class_n: int = 30              # per side: fewer images and a class is not failed against floors
    collapse_max_diversity_ratio: float = 0.5
    collapse_max_close_pair_share: float = 0.5
    memorisation_quantile: float = 0.01
    ct_cells: int = 5                  # k-means cells per class for C_T
    ct_cells_whole: int = 20           # cells for the whole-set C_T
    cas: bool = True                   # train the classification-accuracy-score classifier
    cas_epochs: int = 0                # 0 = auto (as the judge)
    min_density_samples: int = 1000    # below this, per-class coverage gets a warning
    seed: int = 0
    device: str = "auto"
    threads: int = 0                   # torch CPU threads during the audit (0: torch's default);
                                       # 1 is much faster on a machine shared with other jobs
    use_cache: bool = True             # reuse a cached judge for the same manifest
    judge_manifest: str | None = None  # train the judge on this manifest instead of the run's
                                       # own, so several runs are measured with one ruler
    reference_manifest: str | None = None  # real images quality is measured against: its
                                       # training split (reference) and held-out split (floors);
                                       # None = the run's own manifest. Memorisation and shares
                                       # always use the run's own training set.
    chunk_elems: int = metrics.DEFAULT_CHUNK_ELEMS
    judge: JudgeConfig = field(default_factory=JudgeConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AuditConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise DatakitError(f"Unknown audit setting(s) {', '.join(unknown)}; "
                               f"valid settings: {', '.join(sorted(known))}.")
        d = dict(d)
        if isinstance(d.get("judge"), dict):
            d["judge"] = JudgeConfig(**d["judge"])
        return cls(**d)


@dataclass
class RunInputs:
    """What the audit reads from a run directory."""

    run_dir: Path
    config: dict[str, Any]
    images: np.ndarray
    labels: np.ndarray
    manifest: Manifest
    conditional: bool


def load_run(run_dir: str | os.PathLike) -> RunInputs:
    """Read config.json, generated.npz and the training manifest of a run, checking they agree."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"Run directory {run_dir} does not exist. "
                          "Pass the folder written by `datakit train`.")
    cfg_path = run_dir / "config.json"
    if not cfg_path.exists():
        raise RunDirError(f"{cfg_path} is missing, so the run's manifest is unknown. "
                          "Pass a run directory written by `datakit train`.")
    try:
        config = json.loads(cfg_path.read_text())
    except ValueError as e:
        raise RunDirError(f"{cfg_path} is not valid JSON ({e}).") from e
    if not config.get("manifest"):
        raise RunDirError(f"{cfg_path} does not name the training manifest (key \"manifest\").")
    gen_path = run_dir / "generated.npz"
    if not gen_path.exists():
        raise RunDirError(f"{gen_path} is missing: the run has no final samples to audit. "
                          "Let `datakit train` finish (it writes generated.npz last).")
    try:
        with np.load(gen_path) as z:
            images, labels = z["images"], z["labels"]
    except KeyError as e:
        raise RunDirError(f"{gen_path} lacks the array {e}; it needs `images` and `labels`.") from e
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise RunDirError(f"{gen_path} cannot be read ({e}).") from e
    try:
        manifest = read_manifest(config["manifest"])
    except DatakitError as e:
        raise RunDirError(f"The training manifest named in {cfg_path} cannot be read: {e}") from e
    if config.get("manifest_checksum") and config["manifest_checksum"] != manifest.checksum:
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
    return labels.astype(np.int64)


def audit_run(run_dir: str | os.PathLike, config: AuditConfig | None = None) -> dict:
    """Audit one run directory; write ``run_dir/audit/audit.json`` atomically and return its dict.

    Args:
        run_dir: a run directory (config.json + generated.npz, see DESIGN.md).
        config: audit settings (defaults: :class:`AuditConfig`).
    """
    from datakit.audit.compute import build_audit  # the number-crunching lives there
    config = config or AuditConfig()
    t0 = time.perf_counter()
    run = load_run(run_dir)
    audit = build_audit(run, config)
    audit["timing"]["total_s"] = time.perf_counter() - t0
    audit = write_audit(run.run_dir / "audit" / "audit.json", audit)
    log(f"Audit written to {run.run_dir / 'audit' / 'audit.json'}")
    return audit
