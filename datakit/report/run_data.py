"""Everything the run-audit report needs from one run directory, read once.

A run directory (see DESIGN.md) holds ``config.json``, ``metrics.csv``, ``samples/``,
``training.gif``, ``generated.npz`` and ``audit/audit.json``. :func:`read_audited_run` reads
them into a :class:`RunData` (config, samples and manifest with the audit's own readers,
:mod:`datakit.audit.inputs`; the audit typed, :class:`datakit.audit.schema.Audit`); the
accessors below turn the audit into the few shapes the page draws (metric rows with floor
and CI, share pairs, memorisation pairs).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from datakit.audit.inputs import read_config, read_generated, read_run_manifest, run_directory
from datakit.audit.schema import Audit, read_audit
from datakit.errors import DatakitError, RunDirError
from datakit.manifest.model import Manifest
from datakit.manifest.read import read_manifest


@dataclass
class RunData:
    """One run directory, read: its config, curves, samples, audit and manifest.

    ``arm`` and ``seed``: the run's arm and seed in a study (None outside one); ``label``:
    the name the page shows."""

    run_dir: Path
    label: str
    config: dict[str, Any]
    audit: Audit
    arm: str | None = None
    seed: int | None = None
    metrics: pd.DataFrame | None = None
    sample_files: list[Path] = field(default_factory=list)
    gif: Path | None = None
    generated: np.ndarray | None = None
    generated_labels: np.ndarray | None = None
    manifest: Manifest | None = None  # None when it cannot be read
    problems: list[str] = field(default_factory=list)

    # -- training set ---------------------------------------------------------------------
    def train_table(self) -> pd.DataFrame | None:
        """The manifest rows the trainer used (split != "test", or all rows)."""
        if self.manifest is None:
            return None
        t = self.manifest.table
        train = t[t["split"] != "test"]
        return train if len(train) else t

    def reference_manifest(self) -> Manifest | None:
        """The manifest the audit measured against (the run's own, or the one audit.json's
        ``reference.manifest`` names, relative to the audit folder), or None when it cannot be
        read or is not the one audited (another checksum)."""
        ref = self.audit.reference
        if self.manifest is not None and (ref.own or ref.checksum == self.manifest.checksum):
            return self.manifest
        try:
            m = read_manifest((self.run_dir / "audit" / ref.manifest).resolve())
        except (DatakitError, OSError, ValueError):
            return None
        return m if m.checksum == ref.checksum else None

    def images_of_ids(self, manifest: Manifest, ids: Sequence[str]) -> np.ndarray:
        """The images of ``manifest`` with these ids, in their order (unknown ids skipped)."""
        t = manifest.table
        row_of = dict(zip(t["id"].astype(str), t["row"].to_numpy()))
        rows = [int(row_of[i]) for i in ids if i in row_of]
        return np.asarray(manifest.pixels[rows]) if rows else np.zeros((0, *manifest.geometry.shape), np.uint8)

    def class_names(self) -> list[str]:
        names = self.config.get("class_names")
        if names:
            return [str(n) for n in names]
        if self.manifest is not None:
            return [str(n) for n in self.manifest.vocabulary]
        return [r.class_name for r in self.audit.per_class]

    def properties(self) -> dict[str, Any]:
        """Composition of the training set: images, synthetic/wild/handwritten share, skew."""
        t = self.train_table()
        # the steps trained (a run that stopped on its probe's plateau, or was interrupted,
        # did fewer than its config's ``steps``); older runs record only ``steps``
        props: dict[str, Any] = {"run": self.label, "model": self.config.get("model"),
                                 "steps": self.config.get("steps_done", self.config.get("steps"))}
        if t is None:
            return props
        counts = t["class_name"].value_counts()
        props["images"] = int(len(t))
        for dom in ("synthetic", "wild", "handwritten"):
            props[f"{dom}_share"] = float((t["domain"] == dom).mean())
        props["skew"] = float(counts.max() / max(1, counts.min())) if len(counts) else float("nan")
        return props


def read_audited_run(run_dir: str | Path, audit: Audit | None = None, label: str | None = None,
                     arm: str | None = None, seed: int | None = None) -> RunData:
    """Read an audited run directory for the report.

    Args:
        run_dir: the run directory.
        audit: its audit; read from ``run_dir/audit/audit.json`` when omitted.
        label: the name shown on the page (default: the folder name).
        arm, seed: the run's arm and seed in a study (the page groups a study's runs by arm).

    The run directory, config.json, generated.npz and the manifest are read with the audit's
    readers (:mod:`datakit.audit.inputs`). Missing optional parts (curves, samples, the
    manifest) are recorded in ``problems`` and shown on the page instead of failing; a
    missing config or audit is an error.
    """
    run_dir = run_directory(run_dir)
    config = read_config(run_dir)
    if audit is None:
        path = run_dir / "audit" / "audit.json"
        if not path.exists():
            raise RunDirError(f"{path} is missing: the audit results (run `datakit audit` on the run "
                              "first).")
        audit = read_audit(path)
    run = RunData(run_dir=run_dir, label=label or run_dir.resolve().name, config=config, audit=audit,
                  arm=arm, seed=seed)

    mpath = run_dir / "metrics.csv"
    if mpath.exists():
        try:
            run.metrics = pd.read_csv(mpath)
        except (OSError, ValueError, pd.errors.ParserError) as e:
            run.problems.append(f"metrics.csv cannot be read ({e}); no training curves.")
    else:
        run.problems.append("metrics.csv is missing; no training curves.")
    run.sample_files = sorted((run_dir / "samples").glob("step_*.png"))
    run.gif = run_dir / "training.gif" if (run_dir / "training.gif").exists() else None

    if (run_dir / "generated.npz").exists():
        try:
            run.generated, run.generated_labels = read_generated(run_dir)
        except RunDirError as e:
            run.problems.append(f"{e} No sample grids.")
    else:
        run.problems.append("generated.npz is missing; no sample grids.")

    if config.get("manifest"):
        try:
            run.manifest = read_run_manifest(run_dir, config)
        except RunDirError as e:
            run.problems.append(str(e))
    else:
        run.problems.append("config.json names no manifest; no dataset composition.")
    return run


# -- audit accessors (audit.json v2, datakit.audit.schema.Audit) ---------------------------

def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def summary_metrics(audit: Audit) -> dict[str, dict[str, Any]]:
    """Whole-set metrics by name (each a schema ``Metric``, as a dict), plus CAS when it was
    computed."""
    out = {k: asdict(m) for k, m in audit.summary.items()}
    cas = audit.cas
    if cas and _num(cas["accuracy"]) is not None:
        out["cas_accuracy"] = {"value": cas["accuracy"], "floor": cas["floor"], "ci_low": None,
                               "ci_high": None, "better": "higher", "ideal": 1.0,
                               "sample_size": cas["train_images"]}
    return out


def judge_accuracy(audit: Audit) -> float | None:
    """The judge's accuracy on the held-out real images of the audit's reference."""
    return audit.judge["held_out_accuracy"]


def count_correlations(audit: Audit) -> list[dict[str, Any]]:
    """Spearman ρ of each per-class metric with the training count (only on a skewed set)."""
    corr = (audit.composition or {}).get("correlations") or {}
    return [{"metric": k, "rho": v.get("spearman_rho"), "p": v.get("p_value"), "note": v.get("note")}
            for k, v in corr.items()]


def per_class_table(audit: Audit) -> pd.DataFrame:
    """The audit's per-class rows as a DataFrame, one column per audit.json key."""
    return pd.DataFrame([row.to_dict() for row in audit.per_class])


def shares(audit: Audit, kind: str) -> tuple[dict[str, float], dict[str, float]] | None:
    """(training shares, generated shares) of classes (``kind="class"``) or domains.

    Generated class shares are the judge's reading of the samples, the per-class
    ``generated_share`` of the shares check (for conditional runs the conditioning labels'
    shares are set by the sampler); generated domain shares are the judge's domain reading
    (``domains.rows``).
    """
    if kind == "class":
        rows = audit.per_class
        if not rows:
            return None
        return ({r.class_name: r.train_share for r in rows},
                {r.class_name: r.metrics["generated_share"] for r in rows})
    section = audit.domains
    if not section or "rows" not in section:
        return None
    rows = section["rows"]
    return ({r["name"]: r["train_share"] for r in rows}, {r["name"]: r["generated_share"] for r in rows})


def memorisation_pairs(audit: Audit, manifest: Manifest | None = None) -> list[dict[str, Any]]:
    """Worst memorisation examples as {generated_index, train_row, distance} dicts
    (the nearest training image is named by its manifest ``id``; ``manifest`` maps it to a row)."""
    mem = audit.memorisation
    if not mem or manifest is None:
        return []
    row_of = dict(zip(manifest.table["id"].astype(str), manifest.table["row"]))
    return [{"generated_index": int(e["generated_index"]), "train_row": int(row_of[e["nearest_train_id"]]),
             "distance": e["distance"], "class_name": None}
            for e in mem["worst"] if e["nearest_train_id"] in row_of]
