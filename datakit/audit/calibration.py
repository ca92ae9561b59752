"""Calibration: bootstrap confidence intervals and small-sample warnings.

A number means something only next to its real-vs-real floor (computed in
:mod:`datakit.audit.run` with the same functions) and with an interval that says how
much it would move with another draw of samples.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from datakit.audit import metrics


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap replicates."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return float("nan"), float("nan")
    a = (1 - level) / 2 * 100
    return float(np.percentile(v, a)), float(np.percentile(v, 100 - a))


def bootstrap(statistic: Callable[[np.random.Generator], float], replicates: int,
              seed: int = 0) -> tuple[float, float]:
    """Percentile interval of ``statistic(rng)`` over ``replicates`` seeded draws."""
    rng = np.random.default_rng(seed)
    return percentile_interval(np.array([statistic(rng) for _ in range(replicates)]))


def fd_interval(real: np.ndarray, fake: np.ndarray, replicates: int = 50,
                seed: int = 0) -> tuple[float, float]:
    """Bias-corrected bootstrap interval of the Fréchet distance (both sets resampled).

    Resampling with replacement repeats samples, which shrinks covariances and inflates
    the distance: the replicates sit above the estimate. The percentile interval is
    therefore shifted back by the bootstrap bias (mean of replicates - estimate).
    """
    estimate = metrics.fd(real, fake)
    rng = np.random.default_rng(seed)
    reps = np.array([metrics.fd(real[rng.integers(0, len(real), len(real))],
                                fake[rng.integers(0, len(fake), len(fake))])
                     for _ in range(replicates)])
    bias = reps.mean() - estimate
    lo, hi = percentile_interval(reps - bias)
    return max(lo, 0.0), max(hi, 0.0)


def mean_interval(indicators: np.ndarray, replicates: int = 200, seed: int = 0,
                  scale: float = 1.0) -> tuple[float, float]:
    """Bootstrap interval of ``mean(indicators) / scale`` resampling the per-sample values.

    Precision and density are means over generated samples, coverage and recall means
    over real samples; resampling those per-sample values (holding the k-NN balls of the
    other set fixed) gives their sampling interval without recomputing any distance.
    """
    x = np.asarray(indicators, dtype=np.float64)
    if not len(x):
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), (replicates, len(x)))].mean(1) / scale
    return percentile_interval(means)


def small_sample_warnings(per_class: list[dict], feature_dim: int, k: int,
                          min_density_samples: int = 1000) -> list[str]:
    """Sentences naming the classes whose per-class metrics rest on too few samples."""
    out = []
    few_fd = [c["class_name"] for c in per_class if c["reference_count"] < feature_dim]
    if few_fd:
        out.append(f"Per-class Fréchet distances for {_names(few_fd)} rest on fewer real samples "
                   f"than the {feature_dim} feature dimensions; the covariance is singular, so "
                   "treat them as rough and compare them with their floors.")
    few_cov = [c["class_name"] for c in per_class if c["reference_count"] < min_density_samples]
    if few_cov:
        out.append(f"Per-class coverage for {_names(few_cov)} uses fewer than {min_density_samples} "
                   "real samples; k-NN balls are wide at this size, so small differences are noise.")
    tiny = [c["class_name"] for c in per_class if 0 < c["generated_count"] <= k]
    if tiny:
        out.append(f"{'Classes' if len(tiny) > 1 else 'Class'} {_names(tiny)} "
                   f"{'have' if len(tiny) > 1 else 'has'} {k} or fewer generated samples; "
                   "coverage and diversity there are not reliable.")
    return out


def _names(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(map(str, names[:limit]))
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
