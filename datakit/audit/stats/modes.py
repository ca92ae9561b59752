"""Partial mode collapse: how many of a class's real modes do the generated samples reach?

1. The class's real features (training reference) are clustered with k-means for
   k = 2..:data:`MAX_MODES`; the k with the highest silhouette is kept if that silhouette is
   at least :data:`MIN_SILHOUETTE` (0.25: below it Kaufman & Rousseeuw find "no substantial
   structure"). Otherwise the class has no clear modes and its real features are cut into
   :data:`REGIONS` k-means *regions* (Voronoi cells of a continuum, not modes:
   ``ModeModel.kind`` says which), counted the same way, so a generator that reaches only
   part of an unclustered class is still caught. The chosen k and its silhouette are evidence.
2. A sample belongs to its nearest mode centre, unless it is further from that centre than
   :data:`CUT_QUANTILE` of the real members' distances to it (times :data:`CUT_SLACK`):
   far-off samples cover nothing.
3. A mode is covered when it receives at least :data:`MIN_COVER` of the samples it would
   receive from real images (n × its real weight), and at least one.
The same count on held-out real images at the same n is the floor (see :mod:`floors`).

Counting samples per mode misses a generator whose samples still land in every region but
come from only part of the class (2 of 5 pixel-space styles of a digit, which the judge's
features spread over all regions). :func:`recall_statistic` measures what such a class
loses: the share of the class's real images inside the generated samples' k-NN manifold
(the recall of Kynkäänniemi et al. 2019), again against held-out images at the same n.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.spatial.distance import cdist
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from threadpoolctl import threadpool_limits

MAX_MODES = 8
MIN_SILHOUETTE = 0.25
CUT_QUANTILE = 0.99
CUT_SLACK = 1.5
MIN_COVER = 0.2
MAX_FIT = 2000  # real samples clustered per class (a seeded subsample above this)
REGIONS = 5     # k-means regions of a class without clear modes
MAX_ORDERED = 4096  # recall_statistic keeps each sample's neighbour order up to this many samples


@dataclass
class ModeModel:
    """Modes of one class's real features."""

    centres: np.ndarray   # k×D
    weights: np.ndarray   # share of real samples per mode
    cuts: np.ndarray      # per mode: beyond this distance a sample covers nothing
    silhouette: float | None
    kind: str = "modes"   # "modes" (silhouette >= MIN_SILHOUETTE) or "regions"

    @property
    def k(self) -> int:
        return len(self.centres)


def _kmeans(x: np.ndarray, k: int, seed: int) -> KMeans:
    with threadpool_limits(limits=1, user_api="openmp"):
        return KMeans(n_clusters=k, n_init=3, random_state=seed).fit(x)


def fit_modes(real: np.ndarray, *, max_modes: int = MAX_MODES, seed: int = 0) -> ModeModel | None:
    """Cluster ``real`` into modes, choosing k by silhouette (see module docstring)."""
    x = np.asarray(real, np.float64)
    if len(x) < 4:
        return None
    if len(x) > MAX_FIT:
        x = x[np.random.default_rng(seed).choice(len(x), MAX_FIT, replace=False)]
    best, best_s = None, -1.0
    for k in range(2, min(max_modes, len(x) // 3) + 1):
        km = _kmeans(x, k, seed)
        if len(set(km.labels_)) < 2:
            continue
        s = float(silhouette_score(x, km.labels_, sample_size=min(len(x), 1000), random_state=seed))
        if s > best_s:
            best, best_s = km, s
    kind = "modes"
    if best is not None and best_s >= MIN_SILHOUETTE:
        centres, labels, sil = best.cluster_centers_, best.labels_, best_s
    elif len(x) >= 3 * REGIONS:
        km = best if best is not None and best.n_clusters == REGIONS else _kmeans(x, REGIONS, seed)
        centres, labels, sil, kind = km.cluster_centers_, km.labels_, best_s, "regions"
    else:
        centres, labels, sil = x.mean(0, keepdims=True), np.zeros(len(x), int), \
            (best_s if best is not None else None)
    d = np.linalg.norm(x - centres[labels], axis=1)
    k = len(centres)
    weights = np.bincount(labels, minlength=k) / len(x)
    cuts = np.array([CUT_SLACK * np.quantile(d[labels == j], CUT_QUANTILE) if (labels == j).any() else 0.0
                     for j in range(k)])
    return ModeModel(centres, weights, cuts, sil, kind)


def assign_modes(model: ModeModel, x: np.ndarray) -> np.ndarray:
    """Mode index of each sample, -1 for samples beyond their nearest mode's cut."""
    x = np.asarray(x, np.float64)
    if not len(x):
        return np.zeros(0, int)
    d = np.linalg.norm(x[:, None, :] - model.centres[None], axis=2)
    j = d.argmin(1)
    return np.where(d[np.arange(len(x)), j] <= model.cuts[j], j, -1)


def mode_counts(model: ModeModel, assigned: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per mode: the samples of ``assigned`` in it, and how many cover it (MIN_COVER of its
    expected share, and at least one)."""
    counts = np.bincount(assigned[assigned >= 0], minlength=model.k)
    return counts, np.maximum(1.0, MIN_COVER * len(assigned) * model.weights)


def modes_covered(model: ModeModel, assigned: np.ndarray) -> int:
    """Modes receiving at least MIN_COVER of their expected share of ``assigned`` (and one sample)."""
    if not len(assigned):
        return 0
    counts, need = mode_counts(model, assigned)
    return int((counts >= need).sum())


def recall_statistic(real: np.ndarray, samples: np.ndarray, k: int) -> Callable[[np.ndarray], float]:
    """``stat(index)``: share of ``real`` within the k-NN ball of some sample of ``samples[index]``.

    Samples count by content, once each: a bootstrap resample's repeated indices and a
    generator's identical outputs are one sample, so repeats cannot shrink the k-NN balls
    (a repeat would be its own nearest neighbour at distance 0). Repeats are collapse
    evidence, and recall reads them as such: samples from few distinct images reach few real
    images. The ball of a sample has the radius of its k-th nearest other distinct sample; with
    d ≤ k distinct samples, of its (d - 1)-th (one distinct sample: radius 0, so it reaches only
    an identical real image). Distances are exact (cdist) and computed once; balls are closed
    (``<=``), as PRDC's.
    """
    real, samples = np.asarray(real, np.float64), np.asarray(samples, np.float64)
    to_sample = cdist(samples, real)   # one class: small sets, full matrices are cheap
    among = cdist(samples, samples)
    # content id of every sample, and one representative sample per content
    _, first, content = np.unique(samples, axis=0, return_index=True, return_inverse=True)
    content = np.asarray(content).reshape(-1)
    n = len(samples)
    # each sample's others in order of distance, once: a resample's k-NN radius is then the
    # distance of the (k+1)-th member in that order (the sample itself is the first), found
    # without sorting a submatrix per replicate
    order = np.argsort(among, axis=1).astype(np.int32) if n <= MAX_ORDERED else None

    def stat(index: np.ndarray) -> float:
        i = first[np.unique(content[np.asarray(index, dtype=np.int64)])]
        if len(i) == 0:
            return float("nan")
        kk = min(k, len(i) - 1)
        if order is None:
            radii = np.partition(among[np.ix_(i, i)], kk, axis=1)[:, kk]   # the sample itself is the smallest
        else:
            member = np.zeros(n, bool)
            member[i] = True
            ranked = order[i]
            nth = (np.cumsum(member[ranked], axis=1) > kk).argmax(1)
            radii = among[i, ranked[np.arange(len(i)), nth]]
        return float((to_sample[i] <= radii[:, None]).any(0).mean())
    return stat
