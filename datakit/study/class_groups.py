"""Class groups: two named sets of classes (``[compare] class_groups``, e.g. majority and
minority) compared within each arm, and their curves along a sweep.

A group's value in one run is read from the run's per-class rows (study.json
``runs[].per_class``, the audit's rows):

* ``label_fidelity``, ``recall``, ``coverage``, ``fd``: the mean over the group's classes
  (recall is read from the row's ``vs_floor.recall`` test, where the audit keeps it);
* ``generated_share``: the group's share of the samples, as the judge reads them (the sum
  of its classes' shares, so "the minority classes got 3% of the samples" reads directly);
* ``generated_share_ratio``: that share ÷ the group's share of the training images
  (1: the generator kept the group's share; below 1: it shrank it).

Whether a generator amplifies a skew (:func:`amplification_findings`): in each arm whose
groups have unequal training shares, the smaller group's ``generated_share_ratio`` over the
arm's healthy seeds, with its 95% interval. Below 1 (interval and all) the generator gives
the minority even less than its training share: it amplifies the skew.

Along a sweep (:func:`class_group_curve`), each level's value is the mean over the arm's
healthy seeds with its 95% interval (:func:`datakit.study.contrasts.arm_summary`), as the
whole-set curve is; the rows join curve.csv with their group in ``class_group``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import datakit.study.contrasts as cs
from datakit.study.divergence import run_name

if TYPE_CHECKING:
    from datakit.study.spec import Study

#: Per-class metrics compared between two class groups within an arm.
CLASS_GROUP_METRICS = ("label_fidelity", "coverage", "fd")
#: What the class-group curve draws against a sweep's factor, in this order.
GROUP_CURVE_METRICS = ("label_fidelity", "recall", "generated_share", "generated_share_ratio")


def class_value(row: dict[str, Any], metric: str) -> float | None:
    """One class row's value of ``metric``: its own key, else its floor test's value (the
    audit stores recall only as ``vs_floor.recall``); None when not measured."""
    value = row.get(metric)
    if value is None:
        value = ((row.get("vs_floor") or {}).get(metric) or {}).get("value")
    return float(value) if cs._finite(value) else None


def group_value(per_class: list[dict[str, Any]], classes: list[str], metric: str
                ) -> float | None:
    """The group's value of ``metric`` in one run (see the module docstring), or None."""
    rows = [r for r in per_class if str(r.get("class_name")) in classes]
    if metric in ("generated_share", "generated_share_ratio"):
        shares = [class_value(r, "generated_share") for r in rows]
        if not rows or any(s is None for s in shares):
            return None
        generated = sum(shares)
        if metric == "generated_share":
            return generated
        trained = sum(float(r.get("train_share") or 0.0) for r in rows)
        return generated / trained if trained > 0 else None
    vals = [v for v in (class_value(r, metric) for r in rows) if v is not None]
    return sum(vals) / len(vals) if vals else None


def _healthy(runs: list[dict], arm: str) -> list[dict]:
    return [r for r in runs if r["arm"] == arm and not r.get("diverged")]


def _left_out(runs: list[dict], arm: str) -> list[dict]:
    return [r for r in runs if r["arm"] == arm and r.get("diverged")]


def class_group_contrasts(study: "Study", runs: list[dict]) -> list[dict[str, Any]]:
    """Within each arm: group b's mean per-class metric minus group a's, paired over seeds
    (e.g. minority − majority classes of a skewed set). Per-class values carry no image
    interval here, so the interval is over seeds only."""
    if not study.class_groups:
        return []
    (ga, ca), (gb, cb) = study.class_groups.items()
    out = []
    for i, arm in enumerate(study.arms):
        left = [run_name(r) for r in _left_out(runs, arm.name)]
        for metric in CLASS_GROUP_METRICS:
            ma, mb = [], []
            for r in _healthy(runs, arm.name):
                va, vb = (group_value(r["per_class"], c, metric) for c in (ca, cb))
                if va is not None and vb is not None:
                    ma.append(cs.Measurement(r["seed"], va))
                    mb.append(cs.Measurement(r["seed"], vb))
            if ma:
                c = cs.contrast(f"class group ({arm.name})", ga, gb, metric, ma, mb, seed=100 + i,
                                left_out=left)
                c["arm"], c["asked"] = arm.name, True
                c["sentence"] = f"{arm.name}: " + c["sentence"]
                out.append(c)
    return out


#: Groups whose per-class training shares are within this factor of each other are balanced:
#: there is no minority whose share could be amplified.
BALANCED_WITHIN = 1.25


def _group_summary(study: "Study", arm, runs: list[dict], classes: list[str], metric: str
                   ) -> dict[str, Any] | None:
    """A group's ``metric`` in ``arm``: mean over its healthy seeds with its 95% interval
    (:func:`datakit.study.contrasts.arm_summary`), or None when no run measured it. One
    bootstrap seed per arm, so the curve and the amplification finding print one interval
    for one number."""
    values = [cs.Measurement(r["seed"], v) for r in _healthy(runs, arm.name)
              for v in [group_value(r["per_class"], classes, metric)] if v is not None]
    if not values:
        return None
    swept = [a.name for a in study.arms if a.levels]
    seed = (200 + swept.index(arm.name) if arm.name in swept
            else 300 + [a.name for a in study.arms].index(arm.name))
    return cs.arm_summary(values, metric=metric, seed=seed)


def _per_class_train_share(per_class: list[dict[str, Any]], classes: list[str]) -> float:
    rows = [r for r in per_class if str(r.get("class_name")) in classes]
    return sum(float(r.get("train_share") or 0.0) for r in rows) / max(1, len(rows))


def amplification_findings(study: "Study", runs: list[dict]) -> list[dict[str, Any]]:
    """Per arm with a minority group (per-class training share more than
    :data:`BALANCED_WITHIN` below the other group's): the minority's generated share over its
    training share, mean over the arm's healthy seeds with its 95% interval, beside the
    majority's. Interval below 1: the generator amplifies the skew (``warn``); above 1: it
    softens it; containing 1: it keeps the shares, as far as these seeds tell (``info``)."""
    if not study.class_groups:
        return []
    out = []
    for arm in study.arms:
        healthy = _healthy(runs, arm.name)
        if not healthy:
            continue
        groups = list(study.class_groups.items())
        shares = [_per_class_train_share(healthy[0]["per_class"], c) for _, c in groups]
        if min(shares) <= 0 or max(shares) / min(shares) < BALANCED_WITHIN:
            continue
        (minority, m_cls), (majority, _) = sorted(groups, key=lambda g: shares[groups.index(g)])
        ratio = {name: s for name, classes in groups
                 if (s := _group_summary(study, arm, runs, classes, "generated_share_ratio"))}
        if minority not in ratio:
            continue
        m = ratio[minority]
        if m["n_seeds"] >= 2 and m["ci_high"] < 1:
            verb, severity = "amplifies the class skew", "warn"
        elif m["n_seeds"] >= 2 and m["ci_low"] > 1:
            verb, severity = "softens the class skew", "info"
        else:
            verb, severity = "keeps the class shares, as far as these seeds tell", "info"
        seeds = f"over {m['n_seeds']} seed{'s' if m['n_seeds'] != 1 else ''}"
        rest = (f"; the {majority} classes {ratio[majority]['mean']:.3f}×" if majority in ratio
                else "")
        out.append({"check": "amplification", "severity": severity, "classes": list(m_cls),
                    "evidence": {"arm": arm.name, "minority": minority, "majority": majority,
                                 "ratio": ratio},
                    "sentence": f"{arm.name}: the generator {verb}: the judge reads its "
                                f"samples as the {minority} classes ({', '.join(m_cls)}) "
                                f"{m['mean']:.3f}× as often as their share of the training "
                                f"images (95% interval [{m['ci_low']:.3f}, {m['ci_high']:.3f}] "
                                f"{seeds}){rest}."})
    return out


def class_group_curve(study: "Study", runs: list[dict]) -> list[dict[str, Any]]:
    """Each class group's curve along each sweep: one row per (sweep arm, group, metric of
    :data:`GROUP_CURVE_METRICS`) with the mean over the arm's healthy seeds, its interval
    and ``n_seeds``, shaped as curve.csv's rows (``class_group`` set). Empty without
    class groups or sweeps."""
    if not study.class_groups:
        return []
    rows = []
    for arm in (a for a in study.arms if a.levels):
        for group, classes in study.class_groups.items():
            for metric in GROUP_CURVE_METRICS:
                s = _group_summary(study, arm, runs, classes, metric)
                if s is None:
                    continue
                rows.append({"sweep": arm.levels["sweep"], "factor": arm.levels["factor"],
                             "value": arm.levels["value"], "metric": metric,
                             **{k: s[k] for k in ("mean", "ci_low", "ci_high", "n_seeds")},
                             "class_group": group})
    groups = list(study.class_groups)
    return sorted(rows, key=lambda r: (r["sweep"], groups.index(r["class_group"]),
                                       GROUP_CURVE_METRICS.index(r["metric"]), float(r["value"])))
