"""Composition: do classes with fewer training images come out worse?

Only on a skewed training set (max/min class count >= :data:`MIN_SKEW`). Classes are split
at the geometric mean of the largest and smallest count into minority and majority. For
label fidelity, FD (excess over its floor, relative to the floor), coverage and share, the
minority mean of each class's difference to its floor is compared with the majority mean;
the interval of that gap comes from the per-class bootstrap replicates (images resampled
within every class), so it says how much the gap would move with other samples of the same
classes. As for the per-class floor tests (:func:`datakit.audit.stats.floors.is_worse`), minority
classes come out worse only when the whole interval of the gap lies beyond the same minimum
effect (10 points; FD half the floor; share 0.5 of the expected share). Rank correlations with the training count are reported only on a skewed set, and
worded as an association across classes, never as a cause.
"""
from __future__ import annotations

import numpy as np

from datakit.audit.registry import CheckResult, names
from datakit.audit.schema import Finding
from datakit.audit.stats import floors, links
from datakit.audit.stats.calibration import percentile_interval

NAME = "composition"
MIN_SKEW = 1.5
#: (check holding the replicates, replicate key, label, better direction, relative to floor,
#:  minimum effect: the per-class floor test's, on the same scale as the gap)
COMPARED = (("label_fidelity", "label_fidelity", "label fidelity", "higher", False, floors.MIN_POINTS),
            ("quality", "fd", "per-class FD", "lower", True, floors.MIN_FD_RELATIVE),
            ("quality", "coverage", "coverage", "higher", False, floors.MIN_POINTS),
            ("shares", "share", "generated/expected share", "higher", False, 1 - 1 / floors.MIN_SHARE_FACTOR))
#: Associations weaker than this (|Spearman ρ|) or with p >= 0.05 get no sentence.
MIN_RHO = 0.5


def _rows(f) -> dict[str, dict]:
    merged: dict[str, dict] = {c: {"class_name": c} for c in f.classes}
    for r in f.results.values():
        for row in r.table or []:
            merged[row["class_name"]].update({k: v for k, v in row.items() if k != "vs_floor"})
            merged[row["class_name"]].setdefault("vs_floor", {}).update(row.get("vs_floor", {}))
    for lab, c in enumerate(f.classes):
        merged[c]["train_count"] = int(f.train_counts[lab])
    return merged


def _compare(rows, minority, majority, reps, key, relative):
    def diff(c):
        t = rows[c]["vs_floor"].get(key)
        if t is None or c not in reps or not len(reps[c]):
            return None, None
        scale = t.floor if relative else 1.0
        if relative and not scale:
            return None, None
        return t.difference / scale, reps[c] / scale
    a = [diff(c) for c in minority]
    b = [diff(c) for c in majority]
    a, b = [x for x in a if x[0] is not None], [x for x in b if x[0] is not None]
    if not a or not b:
        return None
    gap = np.mean([x[0] for x in a]) - np.mean([x[0] for x in b])
    n = min(len(x[1]) for x in a + b)
    rep = np.mean([x[1][:n] for x in a], 0) - np.mean([x[1][:n] for x in b], 0)
    lo, hi = percentile_interval(rep)
    return {"minority_mean": float(np.mean([x[0] for x in a])), "majority_mean": float(np.mean([x[0] for x in b])),
            "difference": float(gap), "ci_low": lo, "ci_high": hi,
            "classes": [len(a), len(b)], "relative_to_floor": relative}


def check(f, cfg) -> CheckResult:
    counts = {c: int(n) for c, n in zip(f.classes, f.train_counts) if n > 0}
    section = {"skew_ratio": None, "minority": [], "majority": [], "comparisons": {}, "correlations": None,
               "note": None}
    if len(counts) < 2:
        section["note"] = "fewer than two classes with training images"
        return CheckResult(NAME, None, None, "max/min training count", [], sections={"composition": section})
    lo_c, hi_c = min(counts.values()), max(counts.values())
    skew = hi_c / lo_c
    section["skew_ratio"] = skew
    if skew < MIN_SKEW:
        section["note"] = (f"class counts vary by {skew:.2f}× (max/min), less than {MIN_SKEW}×: no "
                           "minority/majority comparison and no correlation with counts")
        return CheckResult(NAME, None, skew, "max/min training count", [], sections={"composition": section})
    cut = np.sqrt(hi_c * lo_c)
    minority = [c for c, n in counts.items() if n < cut]
    majority = [c for c, n in counts.items() if n >= cut]
    section.update(minority=minority, majority=majority)
    rows = _rows(f)
    findings = []
    for check_name, key, label, better, relative, min_effect in COMPARED:
        res = f.results.get(check_name)
        if res is None or key not in res.replicates:
            continue
        cmp = _compare(rows, minority, majority, res.replicates[key], key, relative)
        if cmp is None:
            continue
        worse = floors.is_worse(cmp["difference"], cmp["ci_low"], cmp["ci_high"], better, min_effect)
        cmp["worse_for_minority"] = bool(worse)
        cmp["min_effect"] = min_effect
        section["comparisons"][key] = cmp
        if worse:
            findings.append(_finding(label, key, cmp, minority, majority, counts))
    section["correlations"] = links.metric_vs_train_count(_differences(rows), names=CORRELATED)
    # an association is stated only where the minority/majority gap is itself conclusive:
    # rank correlations of near-zero differences are noise (e.g. a judge slightly weaker on a class)
    conclusive = {k for k, c in section["comparisons"].items()
                  if c["ci_low"] > 0 or c["ci_high"] < 0}
    findings += _association({k: v for k, v in section["correlations"].items() if k in conclusive})
    return CheckResult(NAME, None, skew, "max/min training count", findings, sections={"composition": section})


#: Per-class differences to the floor correlated with the training count.
CORRELATED = ("label_fidelity", "fd", "coverage", "share")


def _differences(rows: dict[str, dict]) -> list[dict]:
    """Each class's difference to its floor (FD: relative to the floor), with its training count:
    a raw metric would correlate with the count through the judge alone (floors vary too)."""
    out = []
    for r in rows.values():
        d = {"class_name": r["class_name"], "train_count": r["train_count"]}
        for key in CORRELATED:
            t = r.get("vs_floor", {}).get(key)
            if t is not None and t.difference is not None:
                d[key] = t.difference / t.floor if key == "fd" and t.floor else \
                    (None if key == "fd" else t.difference)
        out.append(d)
    return out


def _span(values: list[int]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:,}" if lo == hi else f"{lo:,}–{hi:,}"


def _finding(label, key, cmp, minority, majority, counts) -> Finding:
    span = (lambda cs: _span([counts[c] for c in cs]))
    scale = (lambda x: f"{100 * x:+.0f}%") if cmp["relative_to_floor"] else \
        ((lambda x: f"{100 * x:+.0f} points") if key != "share" else (lambda x: f"{x:+.2f}"))
    what = "excess over the floor, relative to the floor" if cmp["relative_to_floor"] else \
        ("ratio − 1" if key == "share" else "difference to the floor")
    return Finding(NAME, "warn", minority,
                   f"Minority classes ({names(minority)}: {span(minority)} training images) come out worse "
                   f"than majority classes ({names(majority)}: {span(majority)}) on {label}: {what} "
                   f"{scale(cmp['minority_mean'])} against {scale(cmp['majority_mean'])} (gap "
                   f"{scale(cmp['difference'])}, 95% CI {scale(cmp['ci_low'])} to {scale(cmp['ci_high'])}).",
                   {**cmp, "metric": key, "minority": minority, "majority": majority})


def _association(corr: dict) -> list[Finding]:
    keep = [(m, e) for m, e in corr.items() if e.get("spearman_rho") is not None and abs(e["spearman_rho"]) >= MIN_RHO
            and (e.get("p_value") or 1) < 0.05]
    if not keep:
        return []
    m, e = max(keep, key=lambda t: abs(t[1]["spearman_rho"]))
    rho = e["spearman_rho"]
    better = rho < 0 if m == "fd" else rho > 0
    tail = "classes with more training images tend to come out better" if better else \
        "classes with more training images tend to come out worse"
    return [Finding(NAME, "info", [], f"Across classes, per-class {m} relative to its real-vs-real floor is associated with the "
                    "training count "
                    f"(Spearman ρ = {rho:.2f}, p = {e['p_value']:.3g}, {e['classes']} classes): {tail}. "
                    "This is an association across classes, not a measured effect of the count.",
                    {"metric": m, "value": rho, "p_value": e["p_value"], "classes": e["classes"]})]
