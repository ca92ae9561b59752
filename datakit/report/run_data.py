"""Everything the run-audit report needs from one run directory, read once and normalised.

A run directory (see DESIGN.md) holds ``config.json``, ``metrics.csv``, ``samples/``,
``training.gif``, ``generated.npz`` and ``audit/audit.json``. :func:`load_run` reads them
into a :class:`RunData`; the accessors below turn the audit dictionary into the few shapes
the page draws (metric rows with floor and CI, share pairs, memorisation pairs). The audit
dictionary has exactly the shape of :mod:`datakit.audit.schema`; it is read as is.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from datakit.errors import RunDirError


@dataclass
class RunData:
    """One run directory, read: its config, curves, samples, audit dict and manifest."""

    run_dir: Path
    label: str
    config: dict[str, Any]
    audit: dict[str, Any]
    metrics: pd.DataFrame | None = None
    sample_files: list[Path] = field(default_factory=list)
    gif: Path | None = None
    generated: np.ndarray | None = None
    generated_labels: np.ndarray | None = None
    manifest: Any = None  # datakit.manifest.Manifest, or None when it cannot be read
    problems: list[str] = field(default_factory=list)

    # -- training set ---------------------------------------------------------------------
    def train_table(self) -> pd.DataFrame | None:
        """The manifest rows the trainer used (split != "test", or all rows)."""
        if self.manifest is None:
            return None
        t = self.manifest.table
        train = t[t["split"] != "test"]
        return train if len(train) else t

    def class_names(self) -> list[str]:
        names = self.config.get("class_names")
        if names:
            return [str(n) for n in names]
        if self.manifest is not None:
            return [str(n) for n in self.manifest.vocabulary]
        return [str(r.get("class_name")) for r in self.audit.get("per_class", [])]

    def properties(self) -> dict[str, Any]:
        """Composition of the training set: images, synthetic/wild/handwritten share, skew."""
        t = self.train_table()
        props: dict[str, Any] = {"run": self.label, "model": self.config.get("model"),
                                 "steps": self.config.get("steps")}
        if t is None:
            return props
        counts = t["class_name"].value_counts()
        props["images"] = int(len(t))
        for dom in ("synthetic", "wild", "handwritten"):
            props[f"{dom}_share"] = float((t["domain"] == dom).mean())
        props["skew"] = float(counts.max() / max(1, counts.min())) if len(counts) else float("nan")
        return props


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunDirError(f"{path} is missing: {what}. Is {path.parent} a run directory "
                          "written by `datakit train`?") from None
    except (OSError, ValueError) as e:
        raise RunDirError(f"{path} cannot be read as JSON ({e}). Re-run the step that writes it.") from e


def load_run(run_dir: str | Path, audit: dict[str, Any] | None = None,
             label: str | None = None) -> RunData:
    """Read a run directory for the report.

    Args:
        run_dir: the run directory.
        audit: its audit dictionary; read from ``run_dir/audit/audit.json`` when omitted.
        label: the name shown on the page (default: the folder name).

    Missing optional parts (curves, samples, the manifest) are recorded in ``problems``
    and shown on the page instead of failing; a missing config or audit is an error.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"Run directory {run_dir} does not exist. Pass a folder written by "
                          "`datakit train`.")
    config = _read_json(run_dir / "config.json", "the run's settings")
    from datakit.audit.schema import read_audit, validate_audit
    if audit is None:
        path = run_dir / "audit" / "audit.json"
        if not path.exists():
            raise RunDirError(f"{path} is missing: the audit results (run `datakit audit` on the run "
                              "first).")
        audit = read_audit(path)
    else:
        validate_audit(audit, f"the audit of {run_dir}")
    run = RunData(run_dir=run_dir, label=label or run_dir.resolve().name, config=config, audit=audit)

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

    gpath = run_dir / "generated.npz"
    if gpath.exists():
        try:
            with np.load(gpath) as z:
                run.generated = np.asarray(z["images"])
                run.generated_labels = np.asarray(z["labels"]) if "labels" in z else None
        except (OSError, ValueError, KeyError) as e:
            run.problems.append(f"generated.npz cannot be read ({e}); no sample grids.")
    else:
        run.problems.append("generated.npz is missing; no sample grids.")

    mpath = config.get("manifest")
    if mpath:
        from datakit.errors import DatakitError
        from datakit.manifest.read import read_manifest
        try:
            run.manifest = read_manifest(mpath)
        except DatakitError as e:
            run.problems.append(f"The training manifest cannot be read: {e}")
    else:
        run.problems.append("config.json names no manifest; no dataset composition.")
    return run


# -- audit dictionary accessors (audit.json v2, datakit.audit.schema) ----------------------

def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def summary_metrics(audit: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Whole-set metrics by name (each a schema ``Metric``), plus CAS when it was computed."""
    out = dict(audit["summary"])
    cas = audit["cas"]
    if cas and _num(cas.get("accuracy")) is not None:
        out["cas_accuracy"] = {"value": cas["accuracy"], "floor": cas.get("floor"), "ci_low": None,
                               "ci_high": None, "better": "higher", "ideal": 1.0,
                               "sample_size": cas.get("train_images")}
    return out


def judge_accuracy(audit: dict[str, Any]) -> float | None:
    """The judge's accuracy on the held-out real images of the audit's reference."""
    return audit["judge"]["held_out_accuracy"]


def count_correlations(audit: dict[str, Any]) -> list[dict[str, Any]]:
    """Spearman ρ of each per-class metric with the training count (only on a skewed set)."""
    corr = (audit["composition"] or {}).get("correlations") or {}
    return [{"metric": k, "rho": v.get("spearman_rho"), "p": v.get("p_value"), "note": v.get("note")}
            for k, v in corr.items()]


def per_class_table(audit: dict[str, Any]) -> pd.DataFrame:
    """The audit's per-class rows as a DataFrame."""
    return pd.DataFrame(audit["per_class"])


def shares(audit: dict[str, Any], kind: str) -> tuple[dict[str, float], dict[str, float]] | None:
    """(training shares, generated shares) of classes (``kind="class"``) or domains.

    Generated shares of conditional runs are the judge's reading of the samples
    (``judged_share``): the conditioning labels' shares are set by the sampler.
    """
    section = (audit["amplification"] or {}).get("classes") if kind == "class" else audit["domains"]
    if not section or "rows" not in section:
        return None
    rows = section["rows"]
    key = "judged_share" if rows and "judged_share" in rows[0] else "generated_share"
    return ({r["name"]: r["train_share"] for r in rows}, {r["name"]: r[key] for r in rows})


def memorisation_pairs(audit: dict[str, Any], manifest=None) -> list[dict[str, Any]]:
    """Worst memorisation examples as {generated_index, train_row, distance} dicts
    (the nearest training image is named by its manifest ``id``; ``manifest`` maps it to a row)."""
    mem = audit["memorisation"]
    if not mem or manifest is None:
        return []
    row_of = dict(zip(manifest.table["id"].astype(str), manifest.table["row"]))
    return [{"generated_index": int(e["generated_index"]), "train_row": int(row_of[e["nearest_train_id"]]),
             "distance": e["distance"], "class_name": None}
            for e in mem["worst"] if e["nearest_train_id"] in row_of]
