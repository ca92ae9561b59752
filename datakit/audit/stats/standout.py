"""Does a class stand out from the run's other classes? Its gap to its own floor against theirs.

A generator is rarely as close to the data as held-out real images, so on a trained run
every class can be clearly worse than its real-vs-real floor. That is a fact about the run
(how far it is from real data), not about a class. A class *stands out* when its gap is
clearly larger than its siblings' gaps:

1. Per class k: ``ratio_k = value_k / floor_k`` (recall 0.40 against a floor of 0.96 reads
   0.42; FD 90 against 9 reads 10).
2. Against the others: ``standout_k = ratio_k / median(ratio_j, j ≠ k)`` — 1 when class k is as
   far from its floor as the median of the run's other classes, 0.1 when it reaches a tenth of
   what they reach (or, for FD, 10 when it is ten times further off).
3. Its interval: the bootstrap replicates of the floor test's difference, read as replicates of
   the value (``floor + difference``), give replicates of the ratio and so of ``standout_k``
   (the others' median held at its estimate), centred on the estimate: a resample's repeated
   samples shift k-NN statistics (recall, coverage) as a whole, so the replicates' spread is
   used and their shift is not (uncentred, the interval of a class at 0.41 of its siblings on
   recall ran 0.41–0.55, beside its own estimate).
4. The class stands out when its own floor test is worse (a class no worse than real data
   never stands out) and either
   - *far from its siblings*: the whole 95% interval lies beyond :data:`STANDOUT_BELOW`
     (higher-is-better metrics) or :data:`STANDOUT_ABOVE` (FD), whatever the others do; or
   - *alone*: no other class is worse than its floor on this metric, and the whole interval
     lies on the bad side of 1 (it is clearly behind the others, which are at real data). When
     other classes are below real data too, the gap may be the run's, and only a class far from
     its siblings is named (on a healthy trained ACGAN, 3 of 10 classes each missed one of 5
     k-means regions: the run's coarseness, not three collapses).

At least :data:`MIN_OTHERS` other classes with a test are needed; with fewer, no class stands
out on that metric (a two-class run has no siblings to compare with).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datakit.audit.stats.calibration import percentile_interval

#: Higher-is-better metrics: a class stands out below this share of its siblings' ratio.
STANDOUT_BELOW = 0.5
#: Lower-is-better metrics (FD): a class stands out above this multiple of its siblings' ratio.
STANDOUT_ABOVE = 4.0
MIN_OTHERS = 2
#: A class worse than real stands out alone when at most this share of the others are worse too.
ALONE_SHARE = 0.0
LEVEL = 0.95


@dataclass
class Standout:
    """One class's gap against its siblings' on one metric."""

    ratio: float              # value / floor
    others_ratio: float       # median ratio of the other classes
    others_low: float         # the other classes' lowest and highest ratios
    others_high: float
    standout: float           # ratio / others_ratio
    ci_low: float
    ci_high: float
    threshold: float          # STANDOUT_BELOW or STANDOUT_ABOVE
    better: str
    stands_out: bool

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def ratio(value: float | None, floor: float | None) -> float | None:
    """value / floor, or None when either is missing or the floor is not positive."""
    if value is None or floor is None or not np.isfinite([value, floor]).all() or floor <= 0:
        return None
    return float(value / floor)


def standouts(tests: dict[str, tuple[float | None, float | None, bool, np.ndarray]],
              better: str, *, level: float = LEVEL) -> dict[str, Standout]:
    """Each class's :class:`Standout` from its floor test on one metric.

    Args:
        tests: class -> (value, floor, worse, bootstrap replicates of value - floor).
        better: "higher" or "lower".
    """
    ratios = {c: ratio(v, fl) for c, (v, fl, _, _) in tests.items()}
    worse_of = {c: bool(w) for c, (_, _, w, _) in tests.items()}
    ratios = {c: r for c, r in ratios.items() if r is not None}
    threshold = STANDOUT_BELOW if better == "higher" else STANDOUT_ABOVE
    out: dict[str, Standout] = {}
    for c, r in ratios.items():
        others = [x for d, x in ratios.items() if d != c]
        if len(others) < MIN_OTHERS:
            continue
        med = float(np.median(others))
        if med <= 0:
            continue
        value, floor, worse, reps = tests[c]
        reps = np.asarray(reps, np.float64)
        reps = reps[np.isfinite(reps)]
        s = r / med
        if len(reps):
            # centred on the estimate: the replicates' spread, not their shift (a resample's
            # repeats move k-NN statistics such as recall and coverage as a whole, step 3)
            rep_s = (floor + reps) / floor / med
            lo, hi = percentile_interval(s + (rep_s - np.median(rep_s)), level)
            lo, hi = max(lo, 0.0), max(hi, 0.0)  # a ratio of non-negative values
        else:
            lo = hi = s
        beyond = hi < threshold if better == "higher" else lo > threshold
        others_worse = sum(worse_of[d] for d in ratios if d != c) / len(others)
        behind = hi < 1.0 if better == "higher" else lo > 1.0
        alone = others_worse <= ALONE_SHARE and behind
        out[c] = Standout(r, med, float(min(others)), float(max(others)), s, float(lo), float(hi), threshold,
                          better, bool(worse and (beyond or alone)))
    return out
