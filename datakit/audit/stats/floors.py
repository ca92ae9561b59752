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
  - recall (share of the class's real images inside the generated samples' k-NN manifold):
    half the floor's miss rate, at least 2 points (the class leaves at least 1.5× as many
    of its real images unreached as held-out images do, as FD's 1.5×),
  - share: a factor of 2 (generated/expected share below 0.5 or above 2),
  - near-duplicate pairs (share of a class's sample pairs within one real nearest-neighbour
    radius): the samples hold at least 4× the held-out share and 1 point more (one style of a
    class drawn over and over; a healthy trained ACGAN's classes sat at 0.3–3.2× their floors).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from datakit.audit.schema import FloorTest
from datakit.audit.stats.calibration import percentile_interval

MIN_POINTS = 0.10        # label fidelity, coverage
MIN_FD_RELATIVE = 0.5    # FD: share of the floor
MIN_MODES = 1.0
MIN_RECALL_POINTS = 0.02     # recall: at least this, ...
MIN_RECALL_MISS_SHARE = 0.5  # ... and at least this share of the floor's miss rate (1 - floor)
MIN_SHARE_FACTOR = 2.0
MIN_CLOSE_PAIRS_FACTOR = 3.0   # near-duplicate pairs: this many floors above the floor, ...
MIN_CLOSE_PAIRS_POINTS = 0.01  # ... and at least this
MIN_CLASS_N = 30         # per side, below it no per-class floor test fails
LEVEL = 0.95
Z95 = 1.959963984540054


def recall_min_effect(floor: float) -> float:
    """Minimum recall gap: half of what held-out images miss (1 - floor), at least 2 points."""
    return max(MIN_RECALL_POINTS, MIN_RECALL_MISS_SHARE * (1.0 - floor))


def close_pairs_min_effect(floor: float) -> float:
    """Minimum near-duplicate-pair gap: 3 floors (4× the floor in all), at least 1 point."""
    return max(MIN_CLOSE_PAIRS_POINTS, MIN_CLOSE_PAIRS_FACTOR * floor)


def wilson_interval(x: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of the proportion x/n (defined at x = 0 and x = n)."""
    if n <= 0:
        return 0.0, 1.0
    p = x / n
    centre = p + z * z / (2 * n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    den = 1 + z * z / n
    return float(max(0.0, (centre - half) / den)), float(min(1.0, (centre + half) / den))


def newcombe_interval(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> tuple[float, float]:
    """Newcombe's hybrid score interval (1998, method 10) of p1 - p2 = x1/n1 - x2/n2.

    From the Wilson intervals (l1, u1), (l2, u2): the difference minus
    sqrt((p1 - l1)² + (u2 - p2)²) and plus sqrt((u1 - p1)² + (p2 - l2)²).
    """
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson_interval(x1, n1, z)
    l2, u2 = wilson_interval(x2, n2, z)
    d = p1 - p2
    return float(d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)), float(d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def matched_indices(n_gen: int, n_held: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Equal-size seeded subsamples (without replacement) of the generated and held-out sets."""
    n = min(n_gen, n_held)
    pick = (lambda m: np.sort(rng.choice(m, n, replace=False)) if m > n else np.arange(m))
    return pick(n_gen), pick(n_held)


def is_worse(difference: float | None, lo: float | None, hi: float | None, better: str,
             min_effect: float) -> bool:
    """Clearly worse: the whole interval lies beyond ``min_effect`` on the bad side."""
    if difference is None or lo is None or hi is None or not np.isfinite([difference, lo, hi]).all():
        return False
    if better == "lower":
        return bool(lo >= min_effect)
    return bool(hi <= -min_effect)


def lazy_statistic(make: Callable[[], Callable[[np.ndarray], float]]) -> Callable[[np.ndarray], float]:
    """A statistic built by ``make()`` on its first call: a floor test's held-out side whose
    distances need not be computed when ``held_memo`` holds its values already."""
    built: list[Callable[[np.ndarray], float]] = []

    def stat(index: np.ndarray) -> float:
        if not built:
            built.append(make())
        return built[0](index)
    return stat


def floor_test(gen_stat: Callable[[np.ndarray], float], held_stat: Callable[[np.ndarray], float],
               n_gen: int, n_held: int, *, better: str, min_effect: Callable[[float], float] | float,
               replicates: int, seed: int, size_matched: bool = True,
               min_n: int = 2, proportion_of: tuple[int, int] | None = None,
               hull: bool = False, min_class_n: int = MIN_CLASS_N,
               held_memo: Callable[[np.ndarray, np.ndarray, Callable], tuple] | None = None,
               ) -> tuple[FloorTest | None, np.ndarray]:
    """Compare a statistic of the generated samples with the same statistic of held-out ones.

    Args:
        gen_stat / held_stat: the statistic of a set given as indices into that side.
        n_gen / n_held: sizes of the two sides.
        better: "lower" or "higher".
        min_effect: the minimum difference, or a function of the floor giving it.
        size_matched: subsample both sides to the same n first (for size-biased metrics).
        min_n: below this many samples on either side, no test (None).
        proportion_of: the statistic is a proportion of (generated, held-out) this many
            units: the interval is Newcombe's (:func:`newcombe_interval`).
        hull: with ``proportion_of``, the hull of Newcombe's and the bootstrap interval.
        held_memo: ``held_memo(h, draws, compute)`` returns ``compute()`` (the held-out
            side's statistic and its replicates, a tuple) or what it returned before for the
            same held-out positions ``h`` and resamples ``draws``: the held-out side depends
            on the run only through the seed and the sizes, so audits of runs with the same
            per-class sample counts share it (:mod:`datakit.audit.reuse`).
    A test with fewer than ``min_class_n`` (:data:`MIN_CLASS_N`; ``AuditConfig.min_class_n``)
    samples on a side is never ``worse``.
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
    # the resamples, drawn in the order of the loop they replace (generated, then held-out)
    draws = [(rng.integers(0, len(g), len(g)), rng.integers(0, len(h), len(h))) for _ in range(replicates)]
    g_draws = np.array([d[0] for d in draws]).reshape(replicates, len(g))
    h_draws = np.array([d[1] for d in draws]).reshape(replicates, len(h))

    def held_side() -> tuple[float, np.ndarray]:
        return float(held_stat(h)), np.array([held_stat(h[d]) for d in h_draws], np.float64)

    value = float(gen_stat(g))
    floor, held_reps = held_memo(h, h_draws, held_side) if held_memo is not None else held_side()
    reps = np.array([gen_stat(g[d]) for d in g_draws], np.float64) - held_reps
    lo, hi = percentile_interval(reps, LEVEL)
    if proportion_of is not None:
        (ng, nh) = proportion_of
        nlo, nhi = newcombe_interval(round(value * ng), ng, round(floor * nh), nh)
        lo, hi = (min(lo, nlo), max(hi, nhi)) if hull else (nlo, nhi)
    effect = float(min_effect(floor) if callable(min_effect) else min_effect)
    diff = value - floor
    n = int(min(len(g), len(h)))
    worse = n >= min_class_n and is_worse(diff, lo, hi, better, effect)
    return FloorTest(value, floor, diff, lo, hi, n, effect, better, worse), reps


def share_test(assigned: np.ndarray, code: int, expected: float, *, replicates: int,
               seed: int, expected_reps: np.ndarray | None = None) -> tuple[FloorTest | None, np.ndarray]:
    """Generated share of ``code`` over its expected share, minus 1, with a bootstrap interval
    over the generated samples. Worse in either direction (suppressed or amplified) by a factor
    of :data:`MIN_SHARE_FACTOR`; ``better`` is "equal" and the whole ratio interval must lie
    at or below 1/factor or at or above the factor. ``expected_reps`` (one expected share per
    replicate, e.g. from resampled held-out images when the expectation is estimated) carry
    the expectation's own uncertainty into the interval."""
    n = len(assigned)
    if n == 0 or expected <= 0:
        return None, np.zeros(0)
    hit = (np.asarray(assigned) == code).astype(np.float64)
    rng = np.random.default_rng(seed)
    denom = expected if expected_reps is None else np.maximum(np.asarray(expected_reps, np.float64), 1e-12)
    reps = hit[rng.integers(0, n, (replicates, n))].mean(1) / denom - 1
    lo, hi = percentile_interval(reps, LEVEL)
    ratio = float(hit.mean() / expected)
    diff = ratio - 1
    # clearly: the whole ratio interval at or beyond the factor
    suppressed = 1 + hi <= 1 / MIN_SHARE_FACTOR
    amplified = 1 + lo >= MIN_SHARE_FACTOR
    return FloorTest(ratio, 1.0, diff, lo, hi, n, MIN_SHARE_FACTOR, "equal",
                     bool(suppressed or amplified)), reps
