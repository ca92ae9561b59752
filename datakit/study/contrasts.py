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
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
from scipy import stats

#: Metrics compared by default (those present in the runs' summaries).
CONTRAST_METRICS = ("fd", "label_fidelity", "coverage", "recall", "precision", "density", "kid")
#: Direction of each metric when the audit does not record it (``better``).
BETTER = {"fd": "lower", "kid": "lower", "label_fidelity": "higher", "coverage": "higher",
          "recall": "higher", "precision": "higher", "density": "higher"}
LABELS = {"fd": "FD", "kid": "KID", "label_fidelity": "label fidelity", "coverage": "coverage",
          "recall": "recall", "precision": "precision", "density": "density"}
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


def mean_interval(values: Sequence[float], image_se: Sequence[float], *, seed: int = 0,
                  replicates: int = REPLICATES, level: float = LEVEL
                  ) -> tuple[float, float | None, float | None]:
    """Mean of per-seed ``values`` and its interval over seeds and resampled images.

    ``image_se`` is each value's own standard error (0 where unknown). Returns
    (mean, ci_low, ci_high); with one seed the interval is the image interval alone.
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
        return mean, mean - half, mean + half
    rng = np.random.default_rng(seed)
    pick = rng.integers(n, size=(replicates, n))                  # level 1: seeds
    draws = v[pick] + se[pick] * rng.standard_normal((replicates, n))  # level 2: images
    boot_se = float(draws.mean(axis=1).std(ddof=1)) * math.sqrt(n / (n - 1))
    half = float(stats.t.ppf(0.5 + level / 2, df=n - 1)) * boot_se
    return mean, mean - half, mean + half


def arm_summary(runs: Iterable[Measurement], *, seed: int = 0) -> dict[str, Any]:
    """{mean, ci_low, ci_high, n_seeds} of one arm's metric over its seeds."""
    runs = list(runs)
    mean, lo, hi = mean_interval([r.value for r in runs], [r.image_se for r in runs], seed=seed)
    return {"mean": mean, "ci_low": lo, "ci_high": hi, "n_seeds": len(runs)}


def contrast(factor: str, a: str, b: str, metric: str, runs_a: Iterable[Measurement],
             runs_b: Iterable[Measurement], *, better: str | None = None, seed: int = 0
             ) -> dict[str, Any]:
    """The paired difference b − a of ``metric`` over the seeds both arms have.

    Returns the contrast object of study.json: factor, a, b, metric, difference, ci_low,
    ci_high, n_seeds, conclusive (the interval excludes 0; never with one seed), better,
    sentence.
    """
    by_seed_a = {r.seed: r for r in runs_a}
    by_seed_b = {r.seed: r for r in runs_b}
    seeds = sorted(set(by_seed_a) & set(by_seed_b))
    diffs = [by_seed_b[s].value - by_seed_a[s].value for s in seeds]
    # independent runs: the image noise of a difference adds in quadrature
    ses = [math.hypot(by_seed_a[s].image_se, by_seed_b[s].image_se) for s in seeds]
    better = better or BETTER.get(metric, "higher")
    out = {"factor": factor, "a": a, "b": b, "metric": metric, "difference": None,
           "ci_low": None, "ci_high": None, "n_seeds": len(seeds), "conclusive": False,
           "better": better}
    if seeds:
        diff, lo, hi = mean_interval(diffs, ses, seed=seed)
        out["difference"] = diff
        if len(seeds) > 1:
            out.update(ci_low=lo, ci_high=hi, conclusive=bool(lo > 0 or hi < 0))
    out["sentence"] = contrast_sentence(out)
    return out


def contrast_sentence(c: dict[str, Any]) -> str:
    """What the report says about one contrast."""
    name = LABELS.get(c["metric"], c["metric"])
    head = f"{name}, {c['b']} vs {c['a']}"
    if c["difference"] is None:
        return f"{head}: no seed has both runs; nothing to compare."
    diff = f"{c['difference']:+.3g}"
    if c["n_seeds"] < 2:
        return (f"{head}: difference {diff} from one seed, so seed-to-seed noise is unknown: "
                "inconclusive at this budget (use seeds = [0, 1, 2]).")
    ci = f"[{c['ci_low']:+.3g}, {c['ci_high']:+.3g}]"
    if not c["conclusive"]:
        return (f"{head}: difference {diff}, 95% interval {ci} over {c['n_seeds']} seeds "
                "includes 0: inconclusive at this budget.")
    b_better = (c["difference"] < 0) == (c["better"] == "lower")
    return (f"{head}: difference {diff}, 95% interval {ci} over {c['n_seeds']} seeds: "
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
                                      "ci_high", "n_seeds", "better")}
    if not (c["conclusive"] and _b_is_worse(c)):
        return {"check": "contrast", "severity": "info", "classes": [],
                "sentence": c["sentence"], "evidence": evidence}
    name = LABELS.get(c["metric"], c["metric"])
    where = f"{c['arm']}: " if c.get("arm") else ""
    sentence = (f"{where}{c['b']} is worse than {c['a']} on {name} ({c['better']} is better): "
                f"{c['b']} − {c['a']} = {c['difference']:+.3g}, 95% interval "
                f"[{c['ci_low']:+.3g}, {c['ci_high']:+.3g}] over {c['n_seeds']} seeds (conclusive).")
    return {"check": "contrast", "severity": "warn", "classes": [], "sentence": sentence,
            "evidence": evidence}


def _b_is_worse(c: dict[str, Any]) -> bool:
    return (c["difference"] > 0) == (c["better"] == "lower") and c["difference"] != 0


def study_findings(contrasts: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The study's verdict as findings: the conclusive contrasts (warnings first, see
    :func:`contrast_finding`), then one ``info`` counting the inconclusive ones.

    Built only from contrasts, so no finding ever rests on one seed's point values.
    """
    if not contrasts:
        return [{"check": "contrast", "severity": "info", "classes": [], "evidence": {},
                 "sentence": "The study names no contrasts, so it draws no conclusion."}]
    out = sorted((contrast_finding(c) for c in contrasts if c["conclusive"]),
                 key=lambda f: f["severity"] != "warn")
    rest = sum(not c["conclusive"] for c in contrasts)
    if rest:
        out.append({"check": "contrast", "severity": "info", "classes": [],
                    "evidence": {"inconclusive": rest, "contrasts": len(contrasts)},
                    "sentence": f"{rest} of {len(contrasts)} contrasts are inconclusive at this "
                                "budget (their intervals include 0); more seeds or steps may "
                                "separate them."})
    return out


def study_verdict(contrasts: Sequence[dict[str, Any]]) -> list[str]:
    """The sentences of :func:`study_findings`, in order (study.json's ``verdict``)."""
    return [f["sentence"] for f in study_findings(contrasts)]
