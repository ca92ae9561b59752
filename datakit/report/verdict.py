"""The verdict at the top of the report: a few findings, as sentences with their numbers.

Each rule is a small function of the runs' data that returns zero or more
:class:`Finding` objects; :func:`findings` runs them all and orders them by severity.
The thresholds are module constants so that a reader can see exactly when a rule fires.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from datakit.report.run_data import (LOWER_IS_BETTER, RunData, count_correlations, judge_accuracy,
                                     per_class_table, shares, summary_metrics)

#: A class is "amplified" when its generated share is this many times its training share...
AMPLIFY_RATIO = 1.25
#: ...and at least this many percentage points higher.
AMPLIFY_POINTS = 0.05
#: A class whose generated share is below this fraction of its training share is "barely produced".
SUPPRESSED = 0.25
#: Runs are compared by Fréchet distance when the worst is this many times the best.
FD_RATIO = 1.3
#: D's real/fake accuracy averaged over the last tenth of training above this: D has won.
D_WINS = 0.9
#: Memorised share of generated samples worth a sentence.
MEMORISED_SHARE = 0.01
#: Meehan et al.'s C_T below this means data copying.
CT_COPYING = -3.0
#: Rank correlations weaker than this are not reported.
MIN_RHO = 0.5


@dataclass
class Finding:
    """One sentence of the verdict. ``level`` is "bad", "warn" or "info"."""

    level: str
    text: str


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _who(run: RunData, several: bool) -> str:
    return f"Run {run.label}: " if several else ""


def collapsed_classes(runs: list[RunData]) -> list[Finding]:
    """Classes the audit marked as collapsed, with the audit's evidence."""
    out = []
    for run in runs:
        pc = per_class_table(run.audit)
        if pc.empty or "collapsed" not in pc:
            continue
        bad = pc[pc["collapsed"]]
        if bad.empty:
            continue
        names = ", ".join(str(c) for c in bad["class_name"])
        evidence = ""
        if "collapse_evidence" in bad and isinstance(bad["collapse_evidence"].iloc[0], str):
            # The audit's sentence may end with its decision and thresholds: keep the evidence.
            evidence = f" ({bad['collapse_evidence'].iloc[0].split(' -> ')[0].rstrip('.')})"
        noun = "class" if len(bad) == 1 else "classes"
        out.append(Finding("bad", f"{_who(run, len(runs) > 1)}{len(bad)} of {len(pc)} {noun} "
                                  f"collapsed: {names}{evidence}."))
    return out


def judge_key(run: RunData) -> str | None:
    """What names the feature space a run was measured in: its judge's training manifest."""
    judge = run.audit.get("judge") if isinstance(run.audit.get("judge"), dict) else {}
    return judge.get("manifest_checksum") or run.config.get("manifest_checksum")


def distance_ratio(runs: list[RunData]) -> list[Finding]:
    """With several runs: how many times further from real the worst run is than the best.

    Only runs measured by the same judge (the same training manifest) are ranked. Runs of
    different training sets have different judges, i.e. different rulers; for them the
    finding lists each distance over its own real-vs-real floor and ranks nothing.
    """
    rows = []
    for r in runs:
        fd = summary_metrics(r.audit).get("fd", {})
        if fd.get("value") is not None and fd["value"] > 0:
            rows.append((fd["value"], fd.get("floor"), r))
    if len(rows) < 2:
        return []
    same_judge = len({judge_key(r) for _, _, r in rows}) == 1
    if not same_judge:
        # Different judges are different rulers: a ratio of their distances would be a
        # headline the numbers cannot carry. State each run against its own floor instead.
        parts = ", ".join(f"{r.label} {v / f:.1f}×" if f else f"{r.label} {v:.2f}"
                          for v, f, r in rows)
        return [Finding("info", "Each run was measured by a judge trained on its own training "
                                "set, so Fréchet distances are not on one scale across runs. "
                                f"Distance over its own real-vs-real floor: {parts}.")]
    else:
        scored = sorted(((v, v, r) for v, _, r in rows), key=lambda t: t[0])
        (best, _, rb), (worst, _, rw) = scored[0], scored[-1]
        unit = f"Fréchet distance {worst:.2f} vs {best:.2f}"
    # One judge may measure runs of different training sets (a study's shared judge): each
    # run is then compared with the real images of its own set, and the sentence says so.
    same_data = len({r.config.get("manifest_checksum") for _, _, r in rows}) == 1
    target = "real images" if same_data else "the real images of its own training set"
    if worst / best < FD_RATIO:
        targets = "real images" if same_data else "the real images of their own training sets"
        return [Finding("info", f"All runs are about equally far from {targets} ({unit}).")]
    return [Finding("warn", f"Run {rw.label} is {worst / best:.1f}× further from {target} "
                            f"than run {rb.label} ({unit}, one shared judge).")]


def floor_distance(runs: list[RunData]) -> list[Finding]:
    """Each run's Fréchet distance against its real-vs-real floor."""
    out = []
    for run in runs:
        fd = summary_metrics(run.audit).get("fd")
        if not fd or fd["value"] is None or not fd["floor"]:
            continue
        ratio = fd["value"] / fd["floor"]
        level = "info" if ratio < 3 else "warn"
        out.append(Finding(level, f"{_who(run, len(runs) > 1)}Fréchet distance {fd['value']:.2f}, "
                                  f"{ratio:.1f}× the real-vs-real floor of {fd['floor']:.2f}."))
    return out


def amplification(runs: list[RunData]) -> list[Finding]:
    """Majority-class amplification and domain drift (generated vs training shares)."""
    out = []
    for run in runs:
        who = _who(run, len(runs) > 1)
        cls = shares(run.audit, "class")
        if cls:
            train, gen = cls
            if train:
                major = max(train, key=train.get)
                t, g = train[major], gen.get(major, 0.0)
                if g >= AMPLIFY_RATIO * t and g - t >= AMPLIFY_POINTS:
                    out.append(Finding("bad", f"{who}the model amplifies the majority class "
                                              f"{major!s} from {_pct(t)} of training images to "
                                              f"{_pct(g)} of generated ones."))
                else:
                    worst = max(train, key=lambda k: abs(gen.get(k, 0.0) - train[k]))
                    t, g = train[worst], gen.get(worst, 0.0)
                    if abs(g - t) >= AMPLIFY_POINTS and (g >= AMPLIFY_RATIO * t or t >= AMPLIFY_RATIO * g):
                        verb = "over-produces" if g > t else "under-produces"
                        out.append(Finding("warn", f"{who}the model {verb} class {worst!s}: "
                                                   f"{_pct(t)} of training images, {_pct(g)} of "
                                                   "generated ones."))
            dropped = [k for k in train if train[k] > 0 and gen.get(k, 0.0) < SUPPRESSED * train[k]]
            if dropped:
                dropped.sort(key=lambda k: gen.get(k, 0.0) / train[k])
                names = ", ".join(map(str, dropped[:8])) + (", …" if len(dropped) > 8 else "")
                lo_t, hi_t = min(train[k] for k in dropped), max(train[k] for k in dropped)
                lo_g, hi_g = min(gen.get(k, 0.0) for k in dropped), max(gen.get(k, 0.0) for k in dropped)
                span = (lambda a, b: _pct(a) if _pct(a) == _pct(b) else f"{_pct(a)}–{_pct(b)}")
                out.append(Finding("bad", f"{who}the model barely produces class"
                                          f"{'es' if len(dropped) > 1 else ''} {names}: "
                                          f"{span(lo_t, hi_t)} of training images, "
                                          f"{span(lo_g, hi_g)} of generated ones."))
        dom = shares(run.audit, "domain")
        if dom and len(dom[0]) > 1:
            train, gen = dom
            for d in train:
                t, g = train[d], gen.get(d, 0.0)
                if abs(g - t) >= AMPLIFY_POINTS and (g >= AMPLIFY_RATIO * t or t >= AMPLIFY_RATIO * g):
                    out.append(Finding("warn", f"{who}generated images drift "
                                               f"{'towards' if g > t else 'away from'} the {d} domain: "
                                               f"{_pct(t)} of training images, {_pct(g)} of "
                                               "generated ones."))
                    break
    return out


def discriminator_won(runs: list[RunData]) -> list[Finding]:
    """D's accuracy at the end of training: near 0.5 is a healthy game, near 1 a lost one."""
    out = []
    for run in runs:
        m = run.metrics
        if m is None or m.empty or "acc_real" not in m or "acc_fake" not in m:
            continue
        tail = m.tail(max(1, len(m) // 10))
        acc = float(pd.concat([pd.to_numeric(tail["acc_real"], errors="coerce"),
                               pd.to_numeric(tail["acc_fake"], errors="coerce")]).mean())
        if not math.isfinite(acc):
            continue
        who = _who(run, len(runs) > 1)
        if acc >= D_WINS:
            out.append(Finding("bad", f"{who}the discriminator won: it still tells real from fake "
                                      f"{_pct(acc)} of the time at the end of training, so the "
                                      "generator stopped learning."))
        else:
            out.append(Finding("info", f"{who}the discriminator's accuracy ends at {_pct(acc)} "
                                       "(0.5 is the adversarial equilibrium)."))
    return out


def memorisation(runs: list[RunData]) -> list[Finding]:
    """Generated samples closer to a training image than training images sit to each other,
    exact copies, and the data-copying statistic C_T (below -3: copying)."""
    out = []
    for run in runs:
        mem = run.audit.get("memorisation")
        if not isinstance(mem, dict):
            continue
        who = _who(run, len(runs) > 1)
        share = mem.get("flagged_share", mem.get("share"))
        count = mem.get("flagged_count", mem.get("count"))
        floor = mem.get("flagged_share_floor")
        if isinstance(share, (int, float)) and share >= MEMORISED_SHARE:
            n = f" ({int(count)} images)" if isinstance(count, (int, float)) else ""
            fl = f"; held-out real images: {_pct(floor)}" if isinstance(floor, (int, float)) else ""
            out.append(Finding("warn", f"{who}{_pct(share)} of generated samples{n} sit closer to "
                                       "a training image than training images sit to each other"
                                       f"{fl}: possible copying."))
        copies = mem.get("exact_copies")
        if isinstance(copies, (int, float)) and copies > 0:
            out.append(Finding("bad", f"{who}{int(copies)} generated sample(s) are exact pixel "
                                      "copies of training images."))
        ct = mem.get("ct")
        ct = ct.get("value") if isinstance(ct, dict) else ct
        if isinstance(ct, (int, float)) and ct < CT_COPYING:
            out.append(Finding("bad", f"{who}data-copying test C_T = {ct:.1f} (below "
                                      f"{CT_COPYING:g}): generated samples sit closer to training "
                                      "images than fresh real images do."))
    return out


def count_correlation(runs: list[RunData]) -> list[Finding]:
    """The strongest rank correlation between a per-class quality metric and the class's
    training count (only when |ρ| >= MIN_RHO and, when recorded, p < 0.05)."""
    out = []
    for run in runs:
        # generated_share_ratio is generated share / training share: with labels drawn
        # uniformly it tracks 1/count by construction, so it says nothing here. C_T has no
        # "better" direction (below 0 copying, above 0 underfitting), so no sentence either.
        rows = [r for r in count_correlations(run.audit) if r["rho"] is not None
                and r["metric"] not in ("generated_share_ratio", "ct")
                and abs(r["rho"]) >= MIN_RHO and (r["p"] is None or r["p"] < 0.05)]
        if not rows:
            continue
        r = max(rows, key=lambda r: abs(r["rho"]))
        metric, rho = r["metric"], r["rho"]
        lower_better = metric in LOWER_IS_BETTER or metric in ("close_pair_share", "memorised_share")
        better = (rho < 0) if lower_better else (rho > 0)
        tail = "classes with more training images come out better" if better else \
            "classes with more training images come out worse"
        p = f", p = {r['p']:.3f}" if r["p"] is not None else ""
        out.append(Finding("info", f"{_who(run, len(runs) > 1)}per-class {metric} follows the "
                                   f"training count (Spearman ρ = {rho:.2f}{p}): {tail}."))
    return out


def judge_trust(runs: list[RunData]) -> list[Finding]:
    """A judge too inaccurate on held-out real images makes every class-level number shaky."""
    out = []
    for run in runs:
        judge = run.audit.get("judge") if isinstance(run.audit.get("judge"), dict) else {}
        acc = judge_accuracy(run.audit)
        if judge.get("trusted") is False or (acc is not None and acc < 0.8):
            out.append(Finding("warn", f"{_who(run, len(runs) > 1)}the judge network reads only "
                                       f"{_pct(acc or 0)} of held-out real images correctly, so "
                                       "class-level numbers are shaky."))
    return out


def class_count_rho(pc: pd.DataFrame, metric: str) -> float | None:
    """Spearman rank correlation of a per-class metric with the training count, or None."""
    if pc.empty or metric not in pc or "train_count" not in pc:
        return None
    x = pd.to_numeric(pc["train_count"], errors="coerce")
    y = pd.to_numeric(pc[metric], errors="coerce")
    ok = x.notna() & y.notna()
    if ok.sum() < 4 or x[ok].nunique() < 2 or y[ok].nunique() < 2:
        return None
    rho = spearmanr(x[ok], y[ok]).statistic
    return float(rho) if np.isfinite(rho) else None


RULES: list[Callable[[list[RunData]], list[Finding]]] = [
    collapsed_classes, distance_ratio, amplification, memorisation, discriminator_won,
    floor_distance, count_correlation, judge_trust,
]
_ORDER = {"bad": 0, "warn": 1, "info": 2}


def findings(runs: list[RunData]) -> list[Finding]:
    """Every rule's findings: the runs' distance comparison first, then bad, warn, info."""
    # The comparison of runs is the headline when there are several; then the bad news.
    head = distance_ratio(runs)
    rest = [f for rule in RULES if rule is not distance_ratio for f in rule(runs)]
    out = head + sorted(rest, key=lambda f: _ORDER.get(f.level, 3))
    for f in out:
        f.text = f.text[:1].upper() + f.text[1:]
    return out
