"""The total mode-collapse verdict of one class: its diversity ratio and close-pair share.

Used by :mod:`datakit.audit.checks.collapse`; the other per-class metrics live in the checks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from datakit.judge import metrics


@dataclass
class CollapseRule:
    """A class is collapsed when its generated samples are this much less diverse than real ones."""

    max_diversity_ratio: float = 0.5   # generated / real mean pairwise distance below this
    max_close_pair_share: float = 0.5  # or more than this share of pairs closer than a real NN radius


def close_pair_share(features: np.ndarray, radius: float, max_samples: int = 2000, seed: int = 0) -> float:
    """Share of distinct sample pairs within ``radius`` of each other (``<=``, as the PRDC balls).

    Only pairs of two different samples count, so the share lies in [0, 1] for any
    radius; with a radius of 0 (a real class with duplicate images) exact copies among
    the samples still count as close. NaN with fewer than two samples or no radius.
    """
    return close_pair_statistic(features, radius, max_samples, seed)(np.arange(len(features)))


def close_pair_statistic(features: np.ndarray, radius: float, max_samples: int = 2000,
                         seed: int = 0) -> Callable[[np.ndarray], float]:
    """``stat(index)``: :func:`close_pair_share` of ``features[index]``, for a floor test.

    Pairs are of distinct *indices*: a bootstrap resample that draws a sample twice does not
    make a close pair of it with itself, while a generator's identical outputs (different
    indices, one content) still count as close, as they should (collapse evidence). Distances
    are computed once (a seeded subsample above ``max_samples``; indices beyond it are
    ignored).
    """
    x = np.asarray(features, np.float64)
    keep = np.arange(len(x))
    if len(x) > max_samples:
        keep = np.sort(np.random.default_rng(seed).choice(len(x), max_samples, replace=False))
    position = np.full(len(x), -1)
    position[keep] = np.arange(len(keep))
    close = (metrics.pairwise_distances(x[keep], max_samples=max_samples) <= radius).numpy() \
        if len(keep) >= 2 and np.isfinite(radius) else None
    if close is not None:
        np.fill_diagonal(close, True)  # a sample and itself: subtracted below, whatever the radius

    def stat(index: np.ndarray) -> float:
        i = position[np.unique(np.asarray(index, dtype=np.int64))]
        i = i[i >= 0]
        if close is None or len(i) < 2:
            return float("nan")
        sub = close[np.ix_(i, i)]
        return float((sub.sum() - len(i)) / (len(i) * (len(i) - 1)))
    return stat


def collapse_verdict(class_name: str, generated_count: int, diversity_ratio: float,
                     close_share: float, rule: CollapseRule) -> tuple[bool, str]:
    """Decide collapse for one class and say why, in one sentence."""
    if generated_count == 0:
        return True, f"class {class_name}: no generated sample belongs to this class (mode dropped)."
    if generated_count == 1:
        return True, f"class {class_name}: a single generated sample, so no variety at all."
    collapsed = bool(diversity_ratio < rule.max_diversity_ratio or close_share > rule.max_close_pair_share)
    return collapsed, (
        f"class {class_name}: diversity {diversity_ratio:.2f} of real, {close_share:.0%} of "
        f"generated pairs within one real-image nearest-neighbour radius of each other "
        f"({generated_count} samples) -> {'collapsed' if collapsed else 'not collapsed'} "
        f"(thresholds: diversity < {rule.max_diversity_ratio:g} or pairs > {rule.max_close_pair_share:.0%}).")
