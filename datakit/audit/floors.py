"""Per-class metrics against their real-vs-real floor, decided by a bootstrap interval.

A class's metric (its FD, coverage, label fidelity, mode count) is compared with the same
metric of held-out real images of that class. Metrics that move with sample size (FD,
coverage, modes covered) are computed on the *same number* of generated and held-out
images: both sides are subsampled to n = min(generated, held-out) (a seeded draw without
replacement). The interval of value - floor comes from resampling both sides' images
with replacement; a class is worse than its floor when that interval excludes 0 in the
bad direction *and* the difference is at least a minimum effect, so a statistically clear
but negligible gap (large classes) is not a failure.

Minimum effects (module constants, quoted in each FloorTest):
  - label fidelity and coverage: 0.10 (ten points below the floor),
  - FD: half of the floor (the class sits 1.5× further from its training images than
    fresh real images of the class do),
  - modes covered: 1 mode,
  - share: a factor of 2 (generated/expected share below 0.5 or above 2).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from datakit.audit.calibration import percentile_interval
from datakit.audit.schema import FloorTest

MIN_POINTS = 0.10        # label fidelity, coverage
MIN_FD_RELATIVE = 0.5    # FD: share of the floor
MIN_MODES = 1.0
MIN_SHARE_FACTOR = 2.0
LEVEL = 0.95


def matched_indices(n_gen: int, n_held: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Equal-size seeded subsamples (without replacement) of the generated and held-out sets."""
    n = min(n_gen, n_held)
    pick = (lambda m: np.sort(rng.choice(m, n, replace=False)) if m > n else np.arange(m))
    return pick(n_gen), pick(n_held)


def is_worse(difference: float | None, lo: float | None, hi: float | None, better: str,
             min_effect: float) -> bool:
    """The interval excludes 0 on the bad side and the difference reaches ``min_effect``."""
    if difference is None or lo is None or hi is None or not np.isfinite([difference, lo, hi]).all():
        return False
    if better == "lower":
        return bool(lo > 0 and difference >= min_effect)
    return bool(hi < 0 and difference <= -min_effect)


def floor_test(gen_stat: Callable[[np.ndarray], float], held_stat: Callable[[np.ndarray], float],
               n_gen: int, n_held: int, *, better: str, min_effect: Callable[[float], float] | float,
               replicates: int, seed: int, size_matched: bool = True,
               min_n: int = 2) -> tuple[FloorTest | None, np.ndarray]:
    """Compare a statistic of the generated samples with the same statistic of held-out ones.

    Args:
        gen_stat / held_stat: the statistic of a set given as indices into that side.
        n_gen / n_held: sizes of the two sides.
        better: "lower" or "higher".
        min_effect: the minimum difference, or a function of the floor giving it.
        size_matched: subsample both sides to the same n first (for size-biased metrics).
        min_n: below this many samples on either side, no test (None).
    Returns:
        The test and the bootstrap replicates of the difference (for group comparisons).
    """
    if min(n_gen, n_held) < min_n:
        return None, np.zeros(0)
    rng = np.random.default_rng(seed)
    if size_matched:
        g, h = matched_indices(n_gen, n_held, rng)
    else:
        g, h = np.arange(n_gen), np.arange(n_held)
    value, floor = float(gen_stat(g)), float(held_stat(h))
    reps = np.array([gen_stat(g[rng.integers(0, len(g), len(g))])
                     - held_stat(h[rng.integers(0, len(h), len(h))]) for _ in range(replicates)])
    lo, hi = percentile_interval(reps, LEVEL)
    effect = float(min_effect(floor) if callable(min_effect) else min_effect)
    diff = value - floor
    return FloorTest(value, floor, diff, lo, hi, int(min(len(g), len(h))), effect, better,
                     is_worse(diff, lo, hi, better, effect)), reps


def share_test(assigned: np.ndarray, code: int, expected: float, *, replicates: int,
               seed: int) -> tuple[FloorTest | None, np.ndarray]:
    """Generated share of ``code`` over its expected share, minus 1, with a bootstrap interval
    over the generated samples. Worse in either direction (suppressed or amplified) by a factor
    of :data:`MIN_SHARE_FACTOR`; ``better`` is "equal" and the interval must exclude 0."""
    n = len(assigned)
    if n == 0 or expected <= 0:
        return None, np.zeros(0)
    hit = (np.asarray(assigned) == code).astype(np.float64)
    rng = np.random.default_rng(seed)
    reps = hit[rng.integers(0, n, (replicates, n))].mean(1) / expected - 1
    lo, hi = percentile_interval(reps, LEVEL)
    ratio = float(hit.mean() / expected)
    diff = ratio - 1
    suppressed = hi < 0 and ratio <= 1 / MIN_SHARE_FACTOR
    amplified = lo > 0 and ratio >= MIN_SHARE_FACTOR
    return FloorTest(ratio, 1.0, diff, lo, hi, n, MIN_SHARE_FACTOR, "equal",
                     bool(suppressed or amplified)), reps
