"""A study's results: study.json, curve.csv and the report, from its audited runs.

study.json (every path relative to the study folder):

* ``runs``: one object per (arm, seed): arm, seed, run_dir, steps (planned), steps_done,
  plateaued, summary (whole-set metrics with floor and interval), per_class (the audit's rows);
* ``arms``: per arm, its composition levels and each metric's mean and interval over seeds;
* ``contrasts``: paired differences between arms (:mod:`datakit.study.contrasts`);
* ``verdict``: sentences built from the contrasts only; ``findings``: the same as findings
  ({check, severity, classes, sentence, evidence}): a conclusive contrast whose ``b`` is worse
  is a ``warn``, the rest ``info`` (:func:`datakit.study.contrasts.study_findings`);
* ``reference``: the one real image set and judge every run is measured against;
* ``budget``, ``executor`` (``local`` or ``ray``), ``jobs``, ``threads_per_run``,
  ``curve`` (sweeps: the data-efficiency curve).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import datakit.study.contrasts as cs
from datakit._core.atomic import atomic_write_bytes
from datakit.audit.schema import Audit
from datakit.report.html import write_report
from datakit.report.run_data import summary_metrics
from datakit.study.schema import StudyResults
from datakit.study.sweep import curve_rows, write_curve_csv

if TYPE_CHECKING:
    from datakit.study.arms import Reference
    from datakit.study.spec import Study

#: Metrics contrasted between arms (those the runs have); every summary metric gets an arm mean.
CONTRAST_METRICS = ("fd", "label_fidelity", "coverage", "recall", "precision")
#: Composition levels read from each arm's training rows (the factors of [compare] factor).
_SHARES = ("synthetic", "wild", "handwritten")


def _rel(path: Any, base: Path) -> str | None:
    return None if not path else os.path.relpath(Path(path).resolve(), base.resolve())


def composition_levels(manifest) -> dict[str, float]:
    """images, domain shares and skew (max/min class count) of a manifest's training rows."""
    t = manifest.table
    train = t[t["split"] != "test"] if (t["split"] != "test").any() else t
    counts = train["class_name"].value_counts()
    levels = {"images": int(len(train)), "skew": float(counts.max() / max(1, counts.min()))}
    for d in _SHARES:
        levels[f"{d}_share"] = float((train["domain"] == d).mean())
    return levels


def run_record(arm: str, seed: int, run_dir: Path, audit: Audit, base: Path) -> dict[str, Any]:
    """One entry of study.json's ``runs``: the run's settings, its whole-set metrics (each
    with floor, interval and better direction) and its per-class rows as audit.json holds them."""
    cfg = json.loads((run_dir / "config.json").read_text())
    return {"arm": arm, "seed": seed, "run_dir": _rel(run_dir, base),
            "steps": cfg.get("steps"), "steps_done": cfg.get("steps_done", cfg.get("steps")),
            "plateaued": cfg.get("plateaued"), "epochs": cfg.get("epochs"),
            "summary": summary_metrics(audit), "per_class": audit.to_dict()["per_class"]}


def _measurements(runs: list[dict], arm: str, metric: str) -> list[cs.Measurement]:
    out = []
    for r in runs:
        if r["arm"] == arm and metric in r["summary"]:
            m = cs.measurement(r["seed"], r["summary"][metric])
            if m is not None:
                out.append(m)
    return out


def arm_records(study: "Study", runs: list[dict], manifests: dict[str, Any], base: Path
                ) -> list[dict[str, Any]]:
    """study.json's ``arms``: levels and each metric's mean and interval over seeds."""
    out = []
    for arm in study.arms:
        metrics = list(dict.fromkeys(m for r in runs if r["arm"] == arm.name for m in r["summary"]))
        levels = composition_levels(manifests[arm.name])
        if arm.levels:
            levels[arm.levels["factor"]] = arm.levels["value"]
        out.append({"arm": arm.name, "manifest": _rel(manifests[arm.name].path, base),
                    "levels": levels, "sweep": arm.levels or None,
                    "n_seeds": sum(r["arm"] == arm.name for r in runs),
                    "metrics": {m: cs.arm_summary(_measurements(runs, arm.name, m))
                                for m in metrics}})
    return out


def contrast_pairs(study: "Study", arms: list[dict]) -> list[tuple[str, str, str]]:
    """(factor, a, b): the pairs the study names, then adjacent arms along each factor."""
    by_name = {a["arm"]: a for a in arms}
    specs = {a.name: a for a in study.arms}
    pairs = [(_differing_factor(specs[a], specs[b], by_name), a, b) for a, b in study.contrasts]
    for factor in study.contrast_factors:
        levels = {a["arm"]: a["levels"].get(factor) for a in arms
                  if isinstance(a["levels"].get(factor), (int, float))}
        pairs += [(factor, a, b) for a, b in cs.adjacent_pairs(levels)]
    return list(dict.fromkeys(pairs))


def _differing_factor(a, b, arms: dict[str, dict]) -> str:
    """What separates two arms: a training setting, else a composition level, else 'arm'."""
    train = [k for k in sorted(set(a.train) | set(b.train)) if a.train.get(k) != b.train.get(k)]
    if train:
        return ", ".join(train)
    la, lb = arms[a.name]["levels"], arms[b.name]["levels"]
    diff = [k for k in la if k in lb and la[k] != lb[k]]
    return ", ".join(diff[:2]) if diff else "arm"


def study_contrasts(study: "Study", runs: list[dict], arms: list[dict]) -> list[dict[str, Any]]:
    """study.json's ``contrasts``: every pair × every contrasted metric both arms have."""
    out = []
    for i, (factor, a, b) in enumerate(contrast_pairs(study, arms)):
        for metric in CONTRAST_METRICS:
            ra, rb = _measurements(runs, a, metric), _measurements(runs, b, metric)
            if ra and rb:
                better = next((r["summary"][metric].get("better") for r in runs
                               if r["arm"] == a and metric in r["summary"]), None)
                out.append(cs.contrast(factor, a, b, metric, ra, rb, better=better, seed=i))
    return out


#: Per-class metrics compared between two class groups ([compare] class_groups).
CLASS_GROUP_METRICS = ("label_fidelity", "coverage", "fd")


def _group_mean(per_class: list[dict], classes: list[str], metric: str) -> float | None:
    vals = [r.get(metric) for r in per_class if str(r.get("class_name")) in classes]
    vals = [float(v) for v in vals if cs._finite(v)]
    return sum(vals) / len(vals) if vals else None


def class_group_contrasts(study: "Study", runs: list[dict]) -> list[dict[str, Any]]:
    """Within each arm: group b's mean per-class metric minus group a's, paired over seeds
    (e.g. minority − majority classes of a skewed set). Per-class values carry no image
    interval here, so the interval is over seeds only."""
    if not study.class_groups:
        return []
    (ga, ca), (gb, cb) = study.class_groups.items()
    out = []
    for i, arm in enumerate(study.arms):
        for metric in CLASS_GROUP_METRICS:
            ma, mb = [], []
            for r in runs:
                if r["arm"] != arm.name:
                    continue
                va, vb = (_group_mean(r["per_class"], c, metric) for c in (ca, cb))
                if va is not None and vb is not None:
                    ma.append(cs.Measurement(r["seed"], va))
                    mb.append(cs.Measurement(r["seed"], vb))
            if ma:
                c = cs.contrast(f"class group ({arm.name})", ga, gb, metric, ma, mb, seed=100 + i)
                c["arm"] = arm.name
                c["sentence"] = f"{arm.name}: " + c["sentence"]
                out.append(c)
    return out


def reference_record(reference: "Reference", study: "Study", base: Path) -> dict[str, Any]:
    """study.json's ``reference``: the real images and the judge of every measurement."""
    what = ("the union of every arm's manifest (exact duplicates dropped)"
            if reference.name == "union" else f"the real images of arm {reference.name}'s manifest")
    description = f"{what}, whose judge measures every run"
    return {"arm": reference.name, "manifest": _rel(reference.path, base),
            "manifest_checksum": reference.checksum, "judge_manifest": _rel(reference.path, base),
            "applied": True, "description": description}


def budget_record(study: "Study", runs: list[dict], budget: float,
                  overrides: dict[str, Any]) -> dict[str, Any]:
    """study.json's ``budget``: the training length, the plateau stop, and what each run did."""
    t = {**study.train, **{k: v for k, v in overrides.items() if not k.startswith("audit.")}}
    length = (f"{t['epochs']:g} epochs" if t.get("epochs") is not None
              else f"{t.get('steps', 'default')} steps")
    text = f"{length} of {t.get('batch_size', 64)} images per arm and seed"
    if budget != 1:
        text += f", scaled by --budget {budget:g}"
    if t.get("probe_every"):
        text += (f"; a probe every {t['probe_every']} steps stops a run after "
                 f"{t.get('plateau_patience', 'the default')} probes without improvement")
    plateaued = sum(bool(r.get("plateaued")) for r in runs)
    text += f". {plateaued} of {len(runs)} runs stopped on a plateau."
    if overrides:
        text += " Settings replaced: " + ", ".join(f"{k}={v}" for k, v in overrides.items()) + "."
    return {"scale": budget, "steps": t.get("steps"), "epochs": t.get("epochs"),
            "batch_size": t.get("batch_size"), "probe_every": t.get("probe_every"),
            "plateau_patience": t.get("plateau_patience"), "overrides": overrides,
            "runs_plateaued": plateaued, "description": text}


def write_study_outputs(study: "Study", out: Path, runs: dict[tuple[str, int], Path],
                        audits: list[Audit], manifests: dict[str, Any], reference: "Reference",
                        *, budget: float, overrides: dict[str, Any],
                        executor: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write study.json, curve.csv (sweeps) and report.html; returns (report, study.json)."""

    records = [run_record(a, s, p, au, out) for ((a, s), p), au in zip(runs.items(), audits)]
    arms = arm_records(study, records, manifests, out)
    contrasts = study_contrasts(study, records, arms) + class_group_contrasts(study, records)
    levels = {a.name: a.levels for a in study.arms if a.levels}
    curve = curve_rows({a["arm"]: a for a in arms}, levels) if levels else []
    if curve:
        write_curve_csv(out / "curve.csv", curve)
    data = {"study": study.name, "title": study.title,
            "file": _rel(study.path, out) if study.path else None,
            **(executor or {"executor": "local"}), "seeds": study.seeds,
            "budget": budget_record(study, records, budget, overrides),
            "reference": reference_record(reference, study, out),
            "verdict": cs.study_verdict(contrasts), "findings": cs.study_findings(contrasts),
            "contrasts": contrasts, "arms": arms,
            "curve": curve, "runs": records}
    summary = out / "study.json"
    atomic_write_bytes(summary, json.dumps(data, indent=2, default=str).encode())
    # every run of every arm, in arm order; the page folds each run and shows each
    # arm's training set once
    report = write_report(list(runs.values()), out / "report.html", audits=audits,
                          title=study.title, intro=study.description,
                          labels=[f"{arm} (seed {s})" for arm, s in runs], arm_seeds=list(runs),
                          factors=study.factors or None, study=StudyResults.from_dict(data, str(summary)),
                          relative_paths=True)
    return report, summary
