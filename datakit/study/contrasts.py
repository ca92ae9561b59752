"""Contrasts between study arms: paired differences over seeds, with intervals that count
both seed-to-seed noise and the noise of each run's own finite image sample.

A study trains every arm once per seed. For one metric (FD, label fidelity, coverage, ...)
each run has a value and an interval from the audit's image bootstrap. This module turns
those runs into

* per-arm summaries (:func:`arm_summary`): the mean over seeds and its interval, and
* contrasts (:func:`contrast`): the paired difference b − a over the seeds both arms share,
  its interval, ``conclusive`` (the interval excludes 0) and a sentence.

The interval (:func:`mean_interval`) is a two-level (hierarchical) bootstrap: each replicate
resamples the seeds with replacement (the between-seed level) and, for every drawn seed,
draws each run's metric from a normal with that run's own standard error, read from its
audit interval as (ci_high − ci_low) / 3.92 (the within-run, resampled-images level). The
spread of the replicate means is the standard error of the mean difference under both
sources of noise (Saravanan et al. 2020, "Application of the hierarchical bootstrap to
multi-level data in neuroscience"). With the 2–5 seeds a study can afford, percentiles of
such a bootstrap are too narrow: resampling n seeds underestimates their variance by
(n − 1)/n and has only a handful of distinct outcomes, so identical arms would be called
different far more often than 5% of the time. We therefore use the bootstrap only for the
standard error, correct it by sqrt(n / (n − 1)), and form the interval with Student's t on
n − 1 degrees of freedom: at three seeds wide, honestly so. With a single seed there is no
between-seed level at all, so no contrast can be conclusive; its interval is left empty.

Bounded metrics (precision, recall, coverage and label fidelity are shares in [0, 1]; FD is
never negative) keep intervals inside their range: an arm's interval is clipped to the
metric's bounds (:data:`BOUNDS`), a difference's to ±(high − low). Runs a study found to have
diverged in training (:mod:`datakit.study.divergence`) are left out before any of this, and
every contrast says how many seeds it used and which runs it left out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
from scipy import stats

from datakit.report.numbers import fmt

#: Metrics compared by default (those present in the runs' summaries).
CONTRAST_METRICS = ("fd", "label_fidelity", "coverage", "recall", "precision", "density", "kid")
#: Direction of each metric when the audit does not record it (``better``).
BETTER = {"fd": "lower", "kid": "lower", "label_fidelity": "higher", "coverage": "higher",
          "recall": "higher", "precision": "higher", "density": "higher"}
LABELS = {"fd": "FD", "kid": "KID", "label_fidelity": "label fidelity", "coverage": "coverage",
          "recall": "recall", "precision": "precision", "density": "density"}


def metric_label(metric: str) -> str:
    """A metric's name in sentences: :data:`LABELS`, ``generated_wild_share`` as "generated
    wild share", else the field name."""
    if metric in LABELS:
        return LABELS[metric]
    if metric.startswith("generated_") and metric.endswith("_share"):
        return metric.replace("_", " ")
    return metric


#: The range of each bounded metric: intervals are clipped to it (a share cannot exceed 1).
BOUNDS = {"fd": (0.0, math.inf), "label_fidelity": (0.0, 1.0), "coverage": (0.0, 1.0),
          "recall": (0.0, 1.0), "precision": (0.0, 1.0), "density": (0.0, math.inf),
          "generated_share_ratio": (0.0, math.inf)}
#: Bootstrap replicates and the level of every interval.
REPLICATES = 4000
LEVEL = 0.95
_Z95 = 2 * 1.959964  # an audit interval is a 95% interval: its width is 3.92 standard errors


@dataclass
class Measurement:
    """One run's value of one metric and the standard error of its finite image sample."""

    seed: int
    value: float
    image_se: float = 0.0


def measurement(seed: int, entry: Any) -> Measurement | None:
    """A :class:`Measurement` from an audit summary entry ({value, ci_low, ci_high} or a number)."""
    if isinstance(entry, dict):
        value, lo, hi = entry.get("value"), entry.get("ci_low"), entry.get("ci_high")
    else:
        value, lo, hi = entry, None, None
    if not _finite(value):
        return None
    se = (float(hi) - float(lo)) / _Z95 if _finite(lo) and _finite(hi) else 0.0
    return Measurement(int(seed), float(value), max(0.0, se))


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def bounds_of(metric: str) -> tuple[float, float]:
    """The range of ``metric``'s values: :data:`BOUNDS`, shares in [0, 1] (``*_share``), else
    unbounded."""
    if metric in BOUNDS:
        return BOUNDS[metric]
    if metric.endswith("_share"):
        return (0.0, 1.0)
    return (-math.inf, math.inf)


def difference_bounds(metric: str) -> tuple[float, float]:
    """The range of a difference of two values of ``metric``: ±(high − low)."""
    lo, hi = bounds_of(metric)
    return (-(hi - lo), hi - lo)


def _clip(x: float | None, bounds: tuple[float, float]) -> float | None:
    return None if x is None else min(max(x, bounds[0]), bounds[1])


def mean_interval(values: Sequence[float], image_se: Sequence[float], *, seed: int = 0,
                  replicates: int = REPLICATES, level: float = LEVEL,
                  bounds: tuple[float, float] = (-math.inf, math.inf)
                  ) -> tuple[float, float | None, float | None]:
    """Mean of per-seed ``values`` and its interval over seeds and resampled images.

    ``image_se`` is each value's own standard error (0 where unknown). Returns
    (mean, ci_low, ci_high); with one seed the interval is the image interval alone.
    ``bounds``: the values' range; the interval is clipped to it.
    See the module docstring for why the interval is a bootstrap-t and not a percentile one.
    """
    v = np.asarray(values, dtype=float)
    se = np.asarray(image_se, dtype=float)
    n = len(v)
    if n == 0:
        return float("nan"), None, None
    mean = float(v.mean())
    if n == 1:
        half = stats.norm.ppf(0.5 + level / 2) * float(se[0])
        return mean, _clip(mean - half, bounds), _clip(mean + half, bounds)
    half = float(stats.t.ppf(0.5 + level / 2, df=n - 1)) * bootstrap_se(v, se, seed=seed,
                                                                       replicates=replicates)
    return mean, _clip(mean - half, bounds), _clip(mean + half, bounds)


def bootstrap_se(values: Sequence[float], image_se: Sequence[float], *, seed: int = 0,
                 replicates: int = REPLICATES) -> float:
    """The standard error of the mean of two or more per-seed ``values`` under both levels of
    noise (seeds resampled, then each run's image noise drawn), corrected by sqrt(n / (n − 1))
    (the module docstring says why)."""
    v, se = np.asarray(values, dtype=float), np.asarray(image_se, dtype=float)
    n = len(v)
    rng = np.random.default_rng(seed)
    pick = rng.integers(n, size=(replicates, n))                  # level 1: seeds
    draws = v[pick] + se[pick] * rng.standard_normal((replicates, n))  # level 2: images
    return float(draws.mean(axis=1).std(ddof=1)) * math.sqrt(n / (n - 1))


def p_value(difference: float, se: float, n_seeds: int) -> float:
    """Two-sided p-value of a mean difference over ``n_seeds`` seeds with standard error
    ``se`` (Student's t on n − 1 degrees of freedom): below 0.05 exactly when the 95%
    interval excludes 0."""
    if se <= 0:
        return 0.0 if difference != 0 else 1.0
    return float(2 * stats.t.sf(abs(difference) / se, df=n_seeds - 1))


def add_q_values(contrasts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give each contrast with a p-value its ``q_value`` over all of them (what study.json
    records); returns ``contrasts``."""
    for c, q in zip(contrasts, q_values([c.get("p_value") for c in contrasts])):
        if q is not None:
            c["q_value"] = q
    return contrasts


def q_values(p_values: Sequence[float | None]) -> list[float | None]:
    """Benjamini–Hochberg adjusted p-values (q-values) over the tests that have a p-value
    (None stays None): a contrast with q ≤ 0.05 stands with the false-discovery rate over all
    of them held at 5%."""
    tested = [(p, i) for i, p in enumerate(p_values) if p is not None]
    out: list[float | None] = [None] * len(p_values)
    m, running = len(tested), 1.0
    for rank, (p, i) in reversed(list(enumerate(sorted(tested), start=1))):
        running = min(running, p * m / rank)
        out[i] = running
    return out


def arm_summary(runs: Iterable[Measurement], *, seed: int = 0, metric: str | None = None,
                left_out: Sequence[int] = ()) -> dict[str, Any]:
    """{mean, ci_low, ci_high, n_seeds, left_out} of one arm's metric over its seeds; the
    interval stays within ``metric``'s bounds; ``left_out``: seeds of diverged runs."""
    runs = list(runs)
    mean, lo, hi = mean_interval([r.value for r in runs], [r.image_se for r in runs], seed=seed,
                                 bounds=bounds_of(metric) if metric else (-math.inf, math.inf))
    return {"mean": mean, "ci_low": lo, "ci_high": hi, "n_seeds": len(runs),
            "left_out": sorted(left_out)}


def contrast(factor: str, a: str, b: str, metric: str, runs_a: Iterable[Measurement],
             runs_b: Iterable[Measurement], *, better: str | None = None, seed: int = 0,
             left_out: Sequence[str] = ()) -> dict[str, Any]:
    """The paired difference b − a of ``metric`` over the seeds both arms have.

    ``left_out``: the runs ("ARM seed K") left out because they diverged; the sentence names
    them. Returns the contrast object of study.json: factor, a, b, metric, difference,
    ci_low, ci_high (within the difference's bounds), n_seeds, left_out, conclusive (the
    interval excludes 0; never with one seed), better, sentence, and with two seeds or more
    p_value (below 0.05 exactly when conclusive; the study adds each contrast's q_value,
    :func:`q_values`).
    """
    by_seed_a = {r.seed: r for r in runs_a}
    by_seed_b = {r.seed: r for r in runs_b}
    seeds = sorted(set(by_seed_a) & set(by_seed_b))
    diffs = [by_seed_b[s].value - by_seed_a[s].value for s in seeds]
    # independent runs: the image noise of a difference adds in quadrature
    ses = [math.hypot(by_seed_a[s].image_se, by_seed_b[s].image_se) for s in seeds]
    better = better or BETTER.get(metric, "higher")
    out = {"factor": factor, "a": a, "b": b, "metric": metric, "difference": None,
           "ci_low": None, "ci_high": None, "n_seeds": len(seeds), "left_out": list(left_out),
           "conclusive": False, "better": better}
    if seeds:
        diff, lo, hi = mean_interval(diffs, ses, seed=seed, bounds=difference_bounds(metric))
        out["difference"] = diff
        if len(seeds) > 1:
            out.update(ci_low=lo, ci_high=hi, conclusive=bool(lo > 0 or hi < 0),
                       p_value=p_value(diff, bootstrap_se(diffs, ses, seed=seed), len(seeds)))
    out["sentence"] = contrast_sentence(out)
    return out


def seeds_used(c: dict[str, Any]) -> str:
    """"over 3 seeds", "from one seed", or "over 2 seeds (balanced_dcgan seed 2 left out: it
    diverged in training)"."""
    n = c["n_seeds"]
    text = "from one seed" if n == 1 else f"over {n} seeds"
    left = c.get("left_out") or []
    if left:
        text += (f" ({', '.join(left)} left out: "
                 f"{'it' if len(left) == 1 else 'they'} diverged in training)")
    return text


def contrast_sentence(c: dict[str, Any]) -> str:
    """What the report says about one contrast; it always says how many seeds it used."""
    name = metric_label(c["metric"])
    head = f"{name}, {c['b']} vs {c['a']}"
    if c["difference"] is None:
        return f"{head}: no seed has both runs ({seeds_used(c)}); nothing to compare."
    diff = f"{c['difference']:+.3g}"
    if c["n_seeds"] < 2:
        return (f"{head}: difference {diff} {seeds_used(c)}, so seed-to-seed noise is unknown: "
                "inconclusive at this budget (use seeds = [0, 1, 2]).")
    ci = f"[{c['ci_low']:+.3g}, {c['ci_high']:+.3g}]"
    if not c["conclusive"]:
        return (f"{head}: difference {diff}, 95% interval {ci} {seeds_used(c)} "
                "includes 0: inconclusive at this budget.")
    b_better = (c["difference"] < 0) == (c["better"] == "lower")
    return (f"{head}: difference {diff}, 95% interval {ci} {seeds_used(c)}: "
            f"{c['b']} is {'better' if b_better else 'worse'} than {c['a']} (conclusive).")


def adjacent_pairs(levels: dict[str, float]) -> list[tuple[str, str]]:
    """Arms ordered by a factor's level, as (lower, next higher) pairs; ties are skipped."""
    order = sorted((v, name) for name, v in levels.items() if _finite(v))
    return [(a, b) for (va, a), (vb, b) in zip(order, order[1:]) if va != vb]


def contrast_finding(c: dict[str, Any]) -> dict[str, Any]:
    """One contrast as a finding of the study's verdict ({check, severity, classes, sentence,
    evidence}, the shape of an audit's findings).

    One rule: a conclusive contrast in which ``b`` — the arm (or class group) the study sets
    against ``a``: the treatment, the minority, the next level of a factor — is *worse* than
    ``a`` is a ``warn``, and its sentence says which is worse and by how much; every other
    contrast (conclusive and better, or inconclusive) is ``info`` with its own sentence.
    """
    evidence = {k: c.get(k) for k in ("factor", "a", "b", "metric", "difference", "ci_low",
                                      "ci_high", "n_seeds", "left_out", "better")}
    if not (c["conclusive"] and _b_is_worse(c)):
        return {"check": "contrast", "severity": "info", "classes": [],
                "sentence": c["sentence"], "evidence": evidence}
    name = metric_label(c["metric"])
    where = f"{c['arm']}: " if c.get("arm") else ""
    sentence = (f"{where}{c['b']} is worse than {c['a']} on {name} ({c['better']} is better): "
                f"{c['b']} − {c['a']} = {c['difference']:+.3g}, 95% interval "
                f"[{c['ci_low']:+.3g}, {c['ci_high']:+.3g}] {seeds_used(c)} (conclusive).")
    return {"check": "contrast", "severity": "warn", "classes": [], "sentence": sentence,
            "evidence": evidence}


def _b_is_worse(c: dict[str, Any]) -> bool:
    return (c["difference"] > 0) == (c["better"] == "lower") and c["difference"] != 0


#: Conclusive contrasts the first screen leads with (the study's answer).
ANSWER_SIZE = 4


def _strength(c: dict[str, Any]) -> float:
    """How far a conclusive contrast's interval sits from 0, in half-widths."""
    half = (c["ci_high"] - c["ci_low"]) / 2
    return abs(c["difference"]) / half if half > 0 else math.inf


def study_answer(contrasts: Sequence[dict[str, Any]], size: int = ANSWER_SIZE
                 ) -> list[dict[str, Any]]:
    """The contrasts that answer the study's question, best and worst together: of the
    conclusive ones (those the study file asks for before those a sweep or class groups add),
    the strongest where ``b`` is better and the strongest where it is worse, alternating, up
    to ``size``, from the side whose strongest is the stronger (so a barely conclusive
    difference in a control arm does not lead a page whose answer is a sharp one). Strength
    is the distance of the interval from 0 in half-widths."""
    def key(c: dict[str, Any]) -> tuple[bool, float]:
        return (not c.get("asked", False), -round(_strength(c), 6))

    conclusive = [c for c in contrasts if c["conclusive"]]
    rank = sorted(conclusive, key=key)
    worse = [c for c in rank if _b_is_worse(c)]
    better = [c for c in rank if not _b_is_worse(c)]
    sides = (better, worse)
    if better and worse and key(worse[0]) < key(better[0]):
        sides = (worse, better)
    out: list[dict[str, Any]] = []
    while (better or worse) and len(out) < size:
        for side in sides:
            if side and len(out) < size:
                out.append(side.pop(0))
    return out


def inconclusive_sentence(contrasts: Sequence[dict[str, Any]]) -> str:
    """How many contrasts are inconclusive, and why: no seed with both runs, one seed (so the
    seed-to-seed noise is unknown), or an interval that includes 0."""
    out = [c for c in contrasts if not c["conclusive"]]
    unpaired = sum(c["difference"] is None for c in out)
    one_seed = sum(c["difference"] is not None and c["n_seeds"] < 2 for c in out)
    spans_zero = len(out) - unpaired - one_seed
    alone = {"unpaired": "no seed has both runs",
             "one_seed": "each from one seed, so seed-to-seed noise is unknown",
             "spans_zero": "their intervals include 0"}
    counted = {"unpaired": "with no seed that has both runs",
               "one_seed": "from one seed, whose seed-to-seed noise is unknown",
               "spans_zero": "whose intervals include 0"}
    counts = {"unpaired": unpaired, "one_seed": one_seed, "spans_zero": spans_zero}
    present = [k for k, n in counts.items() if n]
    why = (alone[present[0]] if len(present) == 1
           else "; ".join(f"{counts[k]} {counted[k]}" for k in present))
    why = f"({why})"
    advice = ("run more seeds (e.g. seeds = [0, 1, 2]) to separate them" if not spans_zero
              else "more seeds or steps may separate them")
    return (f"{len(out)} of {len(contrasts)} contrasts are inconclusive at this budget "
            f"{why}; {advice}.")


#: The false-discovery rate a study's conclusive contrasts are held to, all together.
FDR = 0.05


def multiplicity_finding(contrasts: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """One ``info`` finding on the conclusive contrasts as a family: a study tests many
    contrasts at 95% each, so about 1 in 20 of those where nothing differs reads conclusive by
    chance. Holding the false-discovery rate over all tested contrasts at :data:`FDR`
    (Benjamini–Hochberg, :func:`q_values`), it says which conclusive contrasts stand and which
    may be chance. None when no contrast is conclusive."""
    tested = [c for c in contrasts if c.get("p_value") is not None]
    conclusive = [c for c in tested if c["conclusive"]]
    if not conclusive:
        return None
    q = dict(zip(map(id, tested), q_values([c["p_value"] for c in tested])))
    chance = [c for c in conclusive if q[id(c)] > FDR]
    m, k = len(tested), len(conclusive)
    head = f"{k} of {m} contrasts {'is' if k == 1 else 'are'} conclusive at 95%{' each' if k > 1 else ''}"
    chance_rate = "where nothing differs, about 1 contrast in 20 reads conclusive by chance"
    held = (f"with the false-discovery rate over the {m} held at {FDR:.0%} "
            "(Benjamini–Hochberg)")
    if not chance:
        sentence = (f"{head} and {'it stands' if k == 1 else f'all {k} stand'} {held}; "
                    f"{chance_rate}.")
    else:
        names = "; ".join(f"{(c['arm'] + ': ') if c.get('arm') else ''}{metric_label(c['metric'])}, "
                          f"{c['b']} vs {c['a']} (q {fmt(q[id(c)])})" for c in chance)
        j = k - len(chance)
        verdict = (f"{j} {'stands' if j == 1 else 'stand'} and {len(chance)} may be chance" if j
                   else f"none stands: {'it' if k == 1 else 'both' if k == 2 else 'all ' + str(k)} "
                   "may be chance")
        sentence = (f"{head}; {chance_rate}. {held[0].upper()}{held[1:]}, {verdict} ({names}); "
                    f"more seeds would settle {'it' if len(chance) == 1 else 'them'}.")
    return {"check": "contrast", "severity": "info", "classes": [], "sentence": sentence,
            "evidence": {"tested": m, "conclusive": k, "stand": k - len(chance), "fdr": FDR,
                         "may_be_chance": [f"{c['metric']}: {c['b']} vs {c['a']}"
                                           + (f" ({c['arm']})" if c.get("arm") else "")
                                           for c in chance]}}


def one_seed_lead(contrasts: Sequence[dict[str, Any]], arms: Sequence[dict[str, Any]]
                  ) -> dict[str, Any] | None:
    """When every contrast rests on one seed (none can be conclusive), one ``info`` finding
    that still reads the study's first metric: how the arms rank on it, each with its run's
    own 95% interval over images. It is marked a lead, not a conclusion: those intervals leave
    out how far another seed would move a run. Adjacent arms whose intervals overlap are
    named, since even one seed does not order them. None when a contrast has two seeds or
    more, or fewer than two arms measured the metric."""
    paired = [c for c in contrasts if c.get("difference") is not None]
    if not paired or any(c["n_seeds"] > 1 for c in paired):
        return None
    metric = next((m for m in CONTRAST_METRICS if m in {c["metric"] for c in paired}), None)
    if metric is None:
        return None
    measured = [(a["arm"], a["metrics"][metric]) for a in arms
                if _finite((a.get("metrics", {}).get(metric) or {}).get("mean"))]
    if len(measured) < 2:
        return None
    better = BETTER.get(metric, "higher")
    measured.sort(key=lambda x: x[1]["mean"], reverse=better == "higher")
    # (arm, its metric record, its 95% interval over images or None)
    shown = [(arm, m, (float(m["ci_low"]), float(m["ci_high"]))
              if _finite(m.get("ci_low")) and _finite(m.get("ci_high")) else None)
             for arm, m in measured]
    ranked = ", ".join(f"{arm} {fmt(m['mean'])}" + (f" ({fmt(iv[0])}–{fmt(iv[1])})" if iv else "")
                       for arm, m, iv in shown)
    overlap = [(a, b) for (a, _, x), (b, _, y) in zip(shown, shown[1:])
               if x and y and x[0] <= y[1] and y[0] <= x[1]]
    ties = "".join(f"; the intervals of {a} and {b} overlap, so even this seed does not order them"
                   for a, b in overlap)
    sentence = (f"A lead from one seed per arm, not a conclusion: on {metric_label(metric)} "
                f"({better} is better) the arms rank {ranked} (in brackets, each run's 95% "
                f"interval over its images){ties}. Those intervals leave out how far another seed "
                "would move each run; more seeds would test this order.")
    return {"check": "contrast", "severity": "info", "classes": [], "sentence": sentence,
            "evidence": {"lead": True, "metric": metric, "better": better, "seeds": 1,
                         "order": [arm for arm, _, _ in shown],
                         "arms": {arm: {k: m.get(k) for k in ("mean", "ci_low", "ci_high")}
                                  for arm, m, _ in shown},
                         "overlapping": [list(pair) for pair in overlap]}}


def study_findings(contrasts: Sequence[dict[str, Any]],
                   runs: Sequence[dict[str, Any]] = (),
                   notes: Sequence[dict[str, Any]] = (),
                   arms: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """The study's verdict as findings, in the order the first screen reads them:

    1. the answer (:func:`study_answer`: the strongest conclusive contrasts, best and worst
       together; when none is conclusive, the count of inconclusive ones), then whether the
       conclusive ones stand as a family (:func:`multiplicity_finding`), or, when every
       contrast rests on one seed, how ``arms`` rank on the first metric as a lead
       (:func:`one_seed_lead`);
    2. ``runs``: findings on single runs (a diverged run is a ``fail``,
       :mod:`datakit.study.divergence`), then ``notes``: the study's own findings (e.g. a
       reference whose domain mix is not the target's, :mod:`datakit.study.target`);
    3. the other conclusive contrasts (warnings first, see :func:`contrast_finding`), then
       one ``info`` counting the inconclusive ones.

    Contrast findings are built only from contrasts, so none rests on one seed's point values;
    the one-seed lead says that it does.
    """
    if not contrasts:
        return list(runs) + list(notes) + [{
            "check": "contrast", "severity": "info", "classes": [], "evidence": {},
            "sentence": "The study names no contrasts, so it draws no conclusion."}]
    answer = study_answer(contrasts)
    rest = sorted((contrast_finding(c) for c in contrasts if c["conclusive"] and c not in answer),
                  key=lambda f: f["severity"] != "warn")
    lead = [{**contrast_finding(c), "answer": True} for c in answer]
    n_out = sum(not c["conclusive"] for c in contrasts)
    count = []
    if n_out:
        count = [{"check": "contrast", "severity": "info", "classes": [],
                  "evidence": {"inconclusive": n_out, "contrasts": len(contrasts)},
                  "sentence": inconclusive_sentence(contrasts)}]
    if not answer:
        lead, count = count, []
    for f in lead:  # the answer is marked in its evidence (a finding's keys are fixed)
        f["evidence"] = {**f["evidence"], "answer": True}
        f.pop("answer", None)
    family = multiplicity_finding(contrasts) or one_seed_lead(contrasts, arms)  # after the answer
    return lead + ([family] if family else []) + list(runs) + list(notes) + rest + count


def study_verdict(contrasts: Sequence[dict[str, Any]], runs: Sequence[dict[str, Any]] = (),
                  notes: Sequence[dict[str, Any]] = (),
                  arms: Sequence[dict[str, Any]] = ()) -> list[str]:
    """The sentences of :func:`study_findings`, in order (study.json's ``verdict``)."""
    return [f["sentence"] for f in study_findings(contrasts, runs, notes, arms)]
