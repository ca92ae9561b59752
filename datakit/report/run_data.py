"""Everything the run-audit report needs from one run directory, read once and normalised.

A run directory (see DESIGN.md) holds ``config.json``, ``metrics.csv``, ``samples/``,
``training.gif``, ``generated.npz`` and ``audit/audit.json``. :func:`load_run` reads them
into a :class:`RunData`; the accessors below turn the audit dictionary into the few shapes
the page draws (metric rows with floor and CI, share pairs, memorisation pairs), tolerating
the small variations in key names an audit may use.
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

#: Whole-set metrics in the order the page shows them, with the names an audit may use.
METRIC_ALIASES: dict[str, tuple[str, ...]] = {
    "fd": ("fd", "frechet_distance", "frechet", "fid"),
    "kid": ("kid",),
    "precision": ("precision",),
    "recall": ("recall",),
    "density": ("density",),
    "coverage": ("coverage",),
}
#: Per-class metrics shown in the report's table, in this order (floors go beside them).
PER_CLASS_METRICS = ("fd", "diversity_ratio", "close_pair_share", "coverage", "label_fidelity",
                     "generated_share_ratio", "memorised_share", "ct", "cas_accuracy",
                     "intra_fd", "diversity")
#: Metrics for which lower is better (the rest: higher is better).
LOWER_IS_BETTER = {"fd", "kid", "intra_fd", "intra_class_fd"}


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
    if audit is None:
        audit = _read_json(run_dir / "audit" / "audit.json",
                           "the audit results (run `datakit audit` on the run first)")
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
        from datakit.manifest import read_manifest
        try:
            run.manifest = read_manifest(mpath)
        except DatakitError as e:
            run.problems.append(f"The training manifest cannot be read: {e}")
    else:
        run.problems.append("config.json names no manifest; no dataset composition.")
    return run


# -- audit dictionary accessors -------------------------------------------------------------

def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def metric_entry(value: Any) -> dict[str, float | None]:
    """One whole-set metric as {value, floor, ci_low, ci_high} from a number or a dict."""
    if not isinstance(value, dict):
        return {"value": _num(value), "floor": None, "ci_low": None, "ci_high": None}
    v = next((value[k] for k in ("value", "mean", "estimate", "score") if k in value), None)
    floor = next((value[k] for k in ("floor", "real_floor", "real_vs_real", "baseline")
                  if k in value), None)
    if isinstance(floor, dict):
        floor = metric_entry(floor)["value"]
    ci = value.get("ci") or value.get("ci95") or value.get("confidence_interval")
    lo, hi = (ci[0], ci[1]) if isinstance(ci, (list, tuple)) and len(ci) == 2 else \
        (value.get("ci_low"), value.get("ci_high"))
    return {"value": _num(v), "floor": _num(floor), "ci_low": _num(lo), "ci_high": _num(hi)}


def summary_metrics(audit: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Whole-set metrics under canonical names (fd, kid, precision, ...), then any others."""
    summary = audit.get("summary") or {}
    out: dict[str, dict[str, float | None]] = {}
    used: set[str] = set()
    for name, aliases in METRIC_ALIASES.items():
        for a in aliases:
            if a in summary:
                out[name] = metric_entry(summary[a])
                used.add(a)
                break
    for k, v in summary.items():
        if k in used:
            continue
        e = metric_entry(v)
        if e["value"] is not None:
            out[k] = e
    cas = audit.get("cas")
    if isinstance(cas, dict) and _num(cas.get("accuracy")) is not None and "cas" not in out:
        out["cas_accuracy"] = {"value": _num(cas["accuracy"]), "floor": _num(cas.get("floor")),
                               "ci_low": None, "ci_high": None}
    return out


def judge_accuracy(audit: dict[str, Any]) -> float | None:
    """The judge network's accuracy on held-out real images, if recorded."""
    judge = audit.get("judge") if isinstance(audit.get("judge"), dict) else {}
    for v in (audit.get("judge_accuracy"), judge.get("held_out_accuracy"),
              judge.get("heldout_accuracy"), judge.get("accuracy")):
        if _num(v) is not None:
            return _num(v)
    return None


def count_correlations(audit: dict[str, Any]) -> list[dict[str, Any]]:
    """Spearman ρ of each per-class metric with the training count, as recorded by the audit
    (``links.per_class_vs_train_count``), else computed here from ``per_class``."""
    recorded = (audit.get("links") or {}).get("per_class_vs_train_count") \
        if isinstance(audit.get("links"), dict) else None
    if isinstance(recorded, dict) and recorded:
        return [{"metric": k, "rho": _num(v.get("spearman_rho")), "p": _num(v.get("p_value")),
                 "note": v.get("note")} for k, v in recorded.items() if isinstance(v, dict)]
    from datakit.report.verdict import class_count_rho
    pc = per_class_table(audit)
    return [{"metric": c, "rho": class_count_rho(pc, c), "p": None, "note": None}
            for c in PER_CLASS_METRICS if c in pc]


def per_class_table(audit: dict[str, Any]) -> pd.DataFrame:
    """The audit's per-class list as a DataFrame (empty when absent)."""
    rows = audit.get("per_class") or []
    if isinstance(rows, dict):  # {class_name: {...}} form
        rows = [{"class_name": k, **v} for k, v in rows.items()]
    df = pd.DataFrame(rows)
    if not df.empty and "collapsed" in df:
        df["collapsed"] = df["collapsed"].fillna(False).astype(bool)
    return df


def _share_dict(x: Any) -> dict[str, float]:
    if isinstance(x, dict):
        return {str(k): float(v) for k, v in x.items() if _num(v) is not None}
    return {}


def shares(audit: dict[str, Any], kind: str) -> tuple[dict[str, float], dict[str, float]] | None:
    """(training shares, generated shares) of classes (``kind="class"``) or domains.

    Generated shares are the judge's reading of the samples where the audit records it
    (``judged_share``), else the audit's ``generated_share``.
    """
    amp = audit.get("amplification") or {}
    section = None
    for key in ((kind, kind + "es", kind + "s", kind + "_shares") if kind == "class"
                else (kind, kind + "s", kind + "_shares")):
        if key in amp:
            section = amp[key]
            break
    if section is None and kind == "class":
        section = amp
    if isinstance(section, dict) and isinstance(section.get("rows"), list):
        section = section["rows"]
    if isinstance(section, list):  # rows: {name/class_name/domain, train_share, generated_share}
        # For conditional runs the conditioning labels' shares are set by the sampler; the
        # judge's reading of the samples (judged_share) is what the model actually produced.
        key = "judged_share" if section and all(_num(r.get("judged_share")) is not None
                                                 for r in section if isinstance(r, dict)) \
            else "generated_share"
        train, gen = {}, {}
        for r in section:
            name = str(r.get("class_name", r.get("domain", r.get("name"))))
            train[name] = _num(r.get("train_share")) or 0.0
            gen[name] = _num(r.get(key)) or 0.0
        return (train, gen) if train else None
    if not isinstance(section, dict):
        return None
    train = next((section[k] for k in ("train", "train_share", "train_shares", "training")
                  if k in section), None)
    gen = next((section[k] for k in ("generated", "generated_share", "generated_shares", "gen")
                if k in section), None)
    if train is None or gen is None:
        return None
    return _share_dict(train), _share_dict(gen)


def memorisation_pairs(audit: dict[str, Any], manifest=None) -> list[dict[str, Any]]:
    """Worst memorisation examples as {generated_index, train_row, distance} dicts.

    The nearest training image may be named by its pixel-store row or by its manifest
    ``id`` (then ``manifest`` maps it to its row).
    """
    mem = audit.get("memorisation") or {}
    if not isinstance(mem, dict):
        return []
    examples = mem.get("examples") or mem.get("worst") or []
    out = []
    for e in examples:
        if not isinstance(e, dict):
            continue
        g = next((e[k] for k in ("generated_index", "generated", "gen_index", "index") if k in e), None)
        t = next((e[k] for k in ("train_row", "nearest_train_row", "train_index",
                                 "nearest_train_index", "nearest") if k in e), None)
        tid = e.get("nearest_train_id", e.get("train_id"))
        if t is None and tid is not None and manifest is not None:
            rows = manifest.table.loc[manifest.table["id"] == str(tid), "row"]
            t = int(rows.iloc[0]) if len(rows) else None
        if g is None or t is None:
            continue
        out.append({"generated_index": int(g), "train_row": int(t),
                    "distance": _num(e.get("distance", e.get("nn_distance"))),
                    "class_name": e.get("class_name")})
    return out
