"""Calibration: bootstrap confidence intervals and small-sample warnings.

A number means something only next to its real-vs-real floor (computed in
:mod:`datakit.audit.run` with the same functions) and with an interval that says how
much it would move with another draw of samples.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from datakit.judge import metrics


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
    """The spread of the Fréchet distance *at this sample size* (bootstrap, both sets resampled).

    This is how much FD_N would move with another draw of the same numbers of images; it
    is not an interval for the population FD: FD_N is biased upwards by about c/N, so at
    the sizes of an audit the population value usually lies below it (it covered the
    population FD 0 times in 40 trials on Gaussians). For the population value see
    :func:`fd_infinity`.

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


FD_FRACTIONS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def _fd_extrapolated(real: np.ndarray, fake: np.ndarray, rng: np.random.Generator,
                     fractions: tuple[float, ...]) -> tuple[float, np.ndarray]:
    # FD of random subsets holding the same fraction f of both sets, fitted as
    # FD(f) = FD∞ + slope / f: both sets' O(1/N) bias terms scale with 1/f together.
    fds = np.array([metrics.fd(real[rng.choice(len(real), max(2, round(f * len(real))), replace=False)],
                               fake[rng.choice(len(fake), max(2, round(f * len(fake))), replace=False)])
                    for f in fractions])
    slope, intercept = np.polyfit(1 / np.asarray(fractions), fds, 1)
    return float(intercept), fds


def fd_infinity(real: np.ndarray, fake: np.ndarray, replicates: int = 20, seed: int = 0,
                fractions: tuple[float, ...] = FD_FRACTIONS) -> dict:
    """Bias-corrected Fréchet distance FD∞ (Chong & Forsyth 2020) with a 95% interval.

    FD is evaluated on random subsets of both sets at several sizes N (``fractions`` of
    each set), fitted linearly in 1/N and extrapolated to 1/N -> 0. The interval is
    FD∞ ± 1.96 standard errors, the standard error being the spread of FD∞ recomputed on
    ``replicates`` bootstrap resamples of both sets. FD∞ may be negative at small sizes
    (an unbiased estimate of a value near 0); it is reported as computed.

    Returns ``value``, ``ci_low``, ``ci_high``, ``se``, ``sizes`` (real, generated subset
    sizes) and ``fd_at_sizes`` (the FD of each subset of the fit).
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    rng = np.random.default_rng(seed)
    value, fds = _fd_extrapolated(real, fake, rng, fractions)
    boot = [_fd_extrapolated(real[rng.integers(0, len(real), len(real))],
                             fake[rng.integers(0, len(fake), len(fake))], rng, fractions)[0]
            for _ in range(replicates)]
    se = float(np.std(boot, ddof=1)) if replicates > 1 else float("nan")
    return {"value": value, "ci_low": value - 1.96 * se, "ci_high": value + 1.96 * se, "se": se,
            "sizes": [[max(2, round(f * len(real))), max(2, round(f * len(fake)))] for f in fractions],
            "fd_at_sizes": [float(v) for v in fds]}


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
