"""A study's results: study.json, curve.csv and the report, from its audited runs.

study.json (every path relative to the study folder):

* ``runs``: one object per (arm, seed): arm, seed, run_dir, steps (planned), steps_done,
  plateaued (the trainer stopped it on a plateau), batch_size, probe_plateau (whether it had
  plateaued by its own probe, :mod:`datakit.study.plateau`), summary (whole-set metrics
  with floor and interval), per_class (the audit's rows), diverged (the signs that its
  training diverged, :mod:`datakit.study.divergence`; empty for a healthy run);
* ``arms``: per arm, its composition levels and each metric's mean and interval over seeds
  (diverged runs left out, their seeds listed in ``left_out``);
* ``contrasts``: paired differences between arms (:mod:`datakit.study.contrasts`);
* ``verdict``: the sentences of ``findings`` ({check, severity, classes, sentence,
  evidence}), in the order the page reads them: the answer (the strongest conclusive
  contrasts, best and worst together; ``evidence.answer``), then failed runs (``fail``,
  :mod:`datakit.study.divergence`), the study's own warnings (a reference mix off its target,
  :mod:`datakit.study.target`), then the other contrasts: a conclusive contrast whose ``b``
  is worse is a ``warn``, the rest ``info`` (:func:`datakit.study.contrasts.study_findings`);
* ``reference``: the judge's manifest and the real images every run is measured against,
  the ``target`` domain, their held-out ``domain_mix`` and the per-domain ``views``; a run's
  audits against the other domains' images are in ``runs[].views`` and ``arms[].views``;
* ``budget`` (steps, batch, images seen; ``arms``: per arm, its runs plateaued / still
  improving / unknown), ``executor`` (``local`` or ``ray``), ``jobs``, ``threads_per_run``,
  ``curve`` (sweeps: the data-efficiency curve; with class groups, each group's curve too,
  :mod:`datakit.study.class_groups`), ``class_groups`` (the [compare] class groups).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import datakit.study.contrasts as cs
from datakit._core.atomic import atomic_write_bytes
from datakit.audit.schema import Audit
from datakit.manifest.read import read_manifest
from datakit._core.progress import warn
from datakit.report.html import write_report
from datakit.report.numbers import fmt
from datakit.report.portable import absolute_paths, outside_links, relative_to_folder
from datakit.report.run_data import summary_metrics
from datakit.study.class_groups import (amplification_findings, class_group_contrasts,
                                        class_group_curve)
from datakit.study.plateau import arm_plateaus, plateau_findings, probe_plateau
from datakit.study.divergence import (
    diverged_findings,
    divergence_signs,
    mark_diverged,
    run_name,
)
from datakit.study.schema import StudyResults
from datakit.training.config import DEFAULT_STEPS
from datakit.study.sweep import curve_rows, write_curve_csv
from datakit.study.target import domain_mix, generated_share, mix_findings, share_key, single_domain

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


def run_record(arm: str, seed: int, run_dir: Path, audit: Audit, base: Path,
               views: dict[str, Audit] | None = None, target: str | None = None
               ) -> dict[str, Any]:
    """One entry of study.json's ``runs``: the run's settings, its whole-set metrics (each
    with floor, interval and better direction) and its per-class rows as audit.json holds them.

    ``views``: the run's audits against other-domain real images (their whole-set metrics go
    under ``views``); ``target``: the study's target domain, whose generated share joins the
    summary (:func:`datakit.study.target.generated_share`).
    """
    cfg = json.loads((run_dir / "config.json").read_text())
    summary = summary_metrics(audit)
    if target:
        share = generated_share(audit, target)
        if share is not None:
            summary[share_key(target)] = share
    return {"arm": arm, "seed": seed, "run_dir": _rel(run_dir, base),
            "steps": cfg.get("steps"), "steps_done": cfg.get("steps_done", cfg.get("steps")),
            "plateaued": cfg.get("plateaued"), "epochs": cfg.get("epochs"),
            "batch_size": cfg.get("batch_size"),
            "probe_plateau": probe_plateau(run_dir, stopped=bool(cfg.get("plateaued"))),
            "generated": audit.run.get("generated_count"),
            "diverged": divergence_signs(run_dir),
            "summary": summary, "per_class": audit.to_dict()["per_class"],
            "views": {k: summary_metrics(v) for k, v in (views or {}).items()}}


def _healthy(runs: list[dict]) -> list[dict]:
    """The runs that did not diverge: the only ones arm means and contrasts use."""
    return [r for r in runs if not r.get("diverged")]


def _left_out(runs: list[dict], *arms: str) -> list[dict]:
    return [r for r in runs if r["arm"] in arms and r.get("diverged")]


def _measurements(runs: list[dict], arm: str, metric: str, view: str | None = None
                  ) -> list[cs.Measurement]:
    """The arm's healthy runs' values of ``metric`` (in one other-domain ``view``: its audit)."""
    out = []
    for r in _healthy(runs):
        summary = r["summary"] if view is None else (r.get("views") or {}).get(view, {})
        if r["arm"] == arm and metric in summary:
            m = cs.measurement(r["seed"], summary[metric])
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
        left = [r["seed"] for r in _left_out(runs, arm.name)]
        out.append({"arm": arm.name, "manifest": _rel(manifests[arm.name].path, base),
                    "levels": levels, "sweep": arm.levels or None,
                    "n_seeds": sum(r["arm"] == arm.name for r in _healthy(runs)),
                    "left_out": left,
                    "metrics": {m: cs.arm_summary(_measurements(runs, arm.name, m), metric=m,
                                                  left_out=left)
                                for m in metrics},
                    "views": {v: {m: cs.arm_summary(_measurements(runs, arm.name, m, v), metric=m,
                                                    left_out=left)
                                  for m in CONTRAST_METRICS if _measurements(runs, arm.name, m, v)}
                              for v in _view_names(runs)}})
    return out


def _view_names(runs: list[dict]) -> list[str]:
    return list(dict.fromkeys(v for r in runs for v in (r.get("views") or {})))


def contrast_pairs(study: "Study", arms: list[dict]) -> list[tuple[str, str, str]]:
    """(factor, a, b): the pairs the study names, then adjacent arms along each factor.

    A pair is compared once: one named in the study file and also added by a sweep keeps the
    file's order (a, b) and the sweep's factor (:func:`asked_pairs` tells them apart).
    """
    by_name = {a["arm"]: a for a in arms}
    specs = {a.name: a for a in study.arms}
    swept: dict[frozenset, str] = {}
    for factor in study.contrast_factors:
        levels = {a["arm"]: a["levels"].get(factor) for a in arms
                  if isinstance(a["levels"].get(factor), (int, float))}
        for a, b in cs.adjacent_pairs(levels):
            swept.setdefault(frozenset((a, b)), factor)
    out: dict[frozenset, tuple[str, str, str]] = {}
    for a, b in study.contrasts:
        key = frozenset((a, b))
        out.setdefault(key, (swept.get(key) or _differing_factor(specs[a], specs[b], by_name), a, b))
    for factor in study.contrast_factors:
        levels = {a["arm"]: a["levels"].get(factor) for a in arms
                  if isinstance(a["levels"].get(factor), (int, float))}
        for a, b in cs.adjacent_pairs(levels):
            out.setdefault(frozenset((a, b)), (factor, a, b))
    return list(out.values())


def asked_pairs(study: "Study") -> set[frozenset]:
    """The arm pairs the study file names in [compare] contrasts."""
    return {frozenset(p) for p in study.contrasts}


#: Composition levels that name a domain mix, and how a factor column words them.
_DOMAIN_LEVELS = tuple(f"{d}_share" for d in _SHARES)


def _differing_factor(a, b, arms: dict[str, dict]) -> str:
    """What separates two arms, in the user's words: a training setting; else their domain
    mix ("domain mix") when it differs; else a compose option (size, skew, ...); else a
    composition level; else 'arm'."""
    train = [k for k in sorted(set(a.train) | set(b.train)) if a.train.get(k) != b.train.get(k)]
    if train:
        return ", ".join(train)
    la, lb = arms[a.name]["levels"], arms[b.name]["levels"]
    if any(la.get(k) != lb.get(k) for k in _DOMAIN_LEVELS if k in la and k in lb):
        return "domain mix"
    compose = [k for k in sorted(set(a.compose) | set(b.compose))
               if a.compose.get(k) != b.compose.get(k)]
    if compose:
        return ", ".join(compose)
    if a.sources != b.sources:
        return "sources"
    diff = [k for k in la if k in lb and la[k] != lb[k]]
    return ", ".join(diff[:2]) if diff else "arm"


def study_contrasts(study: "Study", runs: list[dict], arms: list[dict],
                    extra: Sequence[str] = ()) -> list[dict[str, Any]]:
    """study.json's ``contrasts``: every pair × every contrasted metric both arms have, over
    their healthy runs (a diverged run is left out and named in the sentence); ``asked``:
    whether the study file names the pair (else a sweep added it). ``extra``: metrics the
    study adds to CONTRAST_METRICS (e.g. the generated share of its target domain)."""
    out = []
    asked = asked_pairs(study)
    for i, (factor, a, b) in enumerate(contrast_pairs(study, arms)):
        left = [run_name(r) for r in _left_out(runs, a, b)]
        for metric in CONTRAST_METRICS + tuple(m for m in extra if m not in CONTRAST_METRICS):
            ra, rb = _measurements(runs, a, metric), _measurements(runs, b, metric)
            if ra and rb:
                better = next((r["summary"][metric].get("better") for r in runs
                               if r["arm"] == a and metric in r["summary"]), None)
                c = cs.contrast(factor, a, b, metric, ra, rb, better=better, seed=i,
                                left_out=left)
                c["asked"] = frozenset((a, b)) in asked
                out.append(c)
    return out




def reference_record(reference: "Reference", study: "Study", base: Path,
                     measured_mix: dict[str, float] | None = None) -> dict[str, Any]:
    """study.json's ``reference``: the real images and the judge of every measurement, the
    target domain, the domain mix of the images measured against, and the other-domain views."""
    what = ("the union of every arm's manifest (exact duplicates dropped)"
            if reference.name == "union" else f"arm {reference.name}'s manifest")
    domain = single_domain(study.target)
    mix = ", ".join(f"{100 * s:.1f}% {d}" for d, s in
                    sorted((measured_mix or {}).items(), key=lambda t: -t[1]))
    if domain:
        description = (f"the {domain} images of {what} (the target domain), with one judge "
                       f"trained on all of {what}")
        others = [v.name for v in reference.other_views]
        if others:
            description += "; each run is also measured against its " + \
                " and ".join(others) + " images, shown beside"
    else:
        description = f"the real images of {what}, whose judge measures every run"
    if mix:
        description += f" (held-out real images measured against: {mix})"
    return {"arm": reference.name, "manifest": _rel(reference.measured, base),
            "manifest_checksum": next((v.checksum for v in reference.views if v.primary),
                                      reference.checksum),
            "judge_manifest": _rel(reference.path, base),
            "target": study.target, "domain_mix": measured_mix,
            "views": [{"domain": v.name, "manifest": _rel(v.path, base), "primary": v.primary}
                      for v in reference.views],
            "applied": True, "description": description}


def budget_record(study: "Study", runs: list[dict], budget: float,
                  overrides: dict[str, Any], arms: list[dict] | None = None) -> dict[str, Any]:
    """study.json's ``budget``: the training length (steps, batch, images seen), the plateau
    stop, and per arm whether its runs had plateaued by their own probe
    (:mod:`datakit.study.plateau`; ``arms``: study.json's arms, for the passes over each
    arm's training images)."""
    t = {**study.train, **{k: v for k, v in overrides.items() if not k.startswith("audit.")}}
    # A batch left at auto is the device's (64 on the CPU, 256 on CUDA): read what the runs
    # recorded; runs made on different devices may differ, and the text says so.
    batches = sorted({int(r["batch_size"]) for r in runs if r.get("batch_size")})
    batch = t.get("batch_size") or (batches[0] if len(batches) == 1 else None)
    done = sorted({r["steps_done"] for r in runs if r.get("steps_done")})
    if t.get("epochs") is not None:
        length = f"{t['epochs']:g} epochs" + (f" × --budget {budget:g}" if budget != 1 else "")
    else:
        planned = int(t.get("steps") or DEFAULT_STEPS)
        steps = max(1, int(round(planned * budget)))
        length = f"{steps:,} steps" + (f" ({planned:,} × --budget {budget:g})" if budget != 1 else "")
        if batch:
            length += f" of {batch} images: {steps * batch:,} images seen per run"
        elif batches:
            length += f" of {batches[0]} to {batches[-1]} images"
    if batch or not batches:
        text = f"{length}, every arm and seed alike"
    else:
        text = (f"{length}: the batch differs between runs (batch_size is auto, and the runs "
                "were trained on different devices)")
    if done and (len(done) > 1 or t.get("epochs") is not None):
        text += f" (steps done: {fmt(done[0])}" + (f" to {fmt(done[-1])}" if len(done) > 1 else "") + ")"
    if t.get("probe_every"):
        text += (f"; a probe every {t['probe_every']} steps"
                 + (f" stops a run after {t['plateau_patience']} probes without improvement"
                    if t.get("plateau_patience") else ""))
    stopped = sum(bool(r.get("plateaued")) for r in runs)
    text += f". {stopped} of {len(runs)} runs stopped on a plateau."
    per_arm = arm_plateaus(runs, [a.name for a in study.arms])
    images = {a["arm"]: (a.get("levels") or {}).get("images") for a in arms or []}
    for a in per_arm:
        if a["images_seen"] and images.get(a["arm"]):
            a["passes"] = a["images_seen"] / images[a["arm"]]
    if any(a["plateaued"] or a["improving"] for a in per_arm):
        text += " Plateaued by their own probe (runs): " + "; ".join(
            f"{a['arm']} {a['plateaued']} of {a['runs']}"
            + (f" ({fmt(a['passes'])} passes over its training images)" if a.get("passes") else "")
            for a in per_arm) + "."
    if overrides:
        text += " Settings replaced: " + ", ".join(f"{k}={v}" for k, v in overrides.items()) + "."
    return {"scale": budget, "steps": t.get("steps"), "epochs": t.get("epochs"),
            "batch_size": batch, "probe_every": t.get("probe_every"),
            "plateau_patience": t.get("plateau_patience"), "overrides": overrides,
            "runs_plateaued": stopped, "arms": per_arm, "description": text}


def write_study_outputs(study: "Study", out: Path, runs: dict[tuple[str, int], Path],
                        audits: list[Audit], manifests: dict[str, Any], reference: "Reference",
                        *, budget: float, overrides: dict[str, Any],
                        executor: dict[str, Any] | None = None,
                        views: list[dict[str, Audit]] | None = None) -> tuple[Path, Path]:
    """Write study.json, curve.csv (sweeps) and report.html; returns (report, study.json).

    ``views``: per run (in ``runs`` order), its audits against other-domain real images."""

    target = single_domain(study.target)
    views = views or [{} for _ in audits]
    records = [run_record(a, s, p, au, out, v, target)
               for ((a, s), p), au, v in zip(runs.items(), audits, views)]
    mark_diverged(records)
    arms = arm_records(study, records, manifests, out)
    extra = [share_key(target)] if target else []
    contrasts = cs.add_q_values(study_contrasts(study, records, arms, extra)
                                + class_group_contrasts(study, records))
    measured = domain_mix(read_manifest(reference.measured))
    arm_domains = [d for m in manifests.values() for d in set(m.table["domain"].astype(str))]
    failed = diverged_findings(records)
    budget_info = budget_record(study, records, budget, overrides, arms)
    notes = amplification_findings(study, records) + plateau_findings(
        records, budget_info["arms"]) + mix_findings(study.target, measured, arm_domains)
    findings = cs.study_findings(contrasts, failed, notes, arms)
    levels = {a.name: a.levels for a in study.arms if a.levels}
    curve = curve_rows({a["arm"]: a for a in arms}, levels) if levels else []
    curve += class_group_curve(study, records)
    if curve:
        write_curve_csv(out / "curve.csv", curve)
    data = {"study": study.name, "title": study.title,
            "file": _rel(study.path, out) if study.path else None,
            **(executor or {"executor": "local"}), "seeds": study.seeds,
            "budget": budget_info,
            "reference": reference_record(reference, study, out, measured),
            "verdict": [f["sentence"] for f in findings], "findings": findings,
            "contrasts": contrasts, "arms": arms,
            "curve": curve, "class_groups": study.class_groups or None, "runs": records}
    summary = out / "study.json"
    text = relative_to_folder(json.dumps(data, indent=2, default=str), out)
    atomic_write_bytes(summary, text.encode())
    data = json.loads(text)
    # every run of every arm, in arm order; the page folds each run and shows each
    # arm's training set once
    report = write_report(list(runs.values()), out / "report.html", audits=audits,
                          title=study.title, intro=study.description,
                          labels=[f"{arm} (seed {s})" for arm, s in runs], arm_seeds=list(runs),
                          factors=study.factors or None, study=StudyResults.from_dict(data, str(summary)),
                          relative_paths=True)
    _warn_unportable(report, summary)
    return report, summary


def _warn_unportable(report: Path, summary: Path) -> None:
    """Warn about any absolute path left in the page or study.json, or a link out of the page:
    both are meant to be read away from this machine (tests assert there is none)."""
    html = report.read_text(encoding="utf-8")
    problems = [f"{p.name}: {x}" for p, text in ((report, html),
                                                 (summary, summary.read_text(encoding="utf-8")))
                for x in absolute_paths(text)]
    problems += [f"{report.name}: link to {x}" for x in outside_links(html, report.parent)]
    if problems:
        warn("The study's page or study.json holds absolute paths or links to files that do "
             "not ship beside it: " + "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else ""))
