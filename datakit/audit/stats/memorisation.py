"""Memorisation: generated samples that sit closer to a training image than training
images sit to each other, and the data-copying test C_T of Meehan et al. (2020).

- Nearest-neighbour check: a generated sample is flagged when its distance to the
  nearest training image (judge features) is below the ``quantile`` of the training
  set's own 1-NN distances. Exact pixel copies are counted separately by hash.
- C_T: the space is cut into cells (k-means on training features); in each cell with
  more than 20 generated samples, a Mann-Whitney U test compares the distances to the
  nearest training image *of that cell* of generated vs held-out real samples; the
  z-scores are averaged weighted by the held-out share of each cell (as Meehan et al.'s
  reference code, github.com/casey-meehan/data-copying). C_T << 0 (below about -3) means
  generated samples are systematically closer to training images than fresh real
  images are: data copying. C_T >> 0 means underfitting.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from datakit.judge import metrics


def flag_close_samples(generated_nn_distance: np.ndarray, train_nn_distance: np.ndarray,
                       quantile: float = 0.01) -> tuple[np.ndarray, float]:
    """Flag generated samples nearer to training than the ``quantile`` of training's own 1-NN distances.

    Returns the flags and the distance threshold used.
    """
    threshold = float(np.quantile(train_nn_distance, quantile))
    # Strictly below, but a distance of exactly 0 (a copy) is always flagged.
    d = np.asarray(generated_nn_distance)
    return (d < threshold) | (d <= 1e-9), threshold


def mann_whitney_z(generated: np.ndarray, held: np.ndarray) -> float:
    """Z-score of the Mann-Whitney U of generated vs held-out distances, as Meehan et al.'s ``Zu``.

    U counts the pairs where a generated distance exceeds a held-out one (ties count
    half; scipy's ``mannwhitneyu(generated, held).statistic``). Z = (U - (mn/2 - 0.5)) / σ
    with σ² = mn(m+n+1)/12: the -0.5 is the reference code's continuity correction.
    Negative: generated samples sit closer to training images than fresh real ones.
    """
    m, n = len(generated), len(held)
    ranks = rankdata(np.concatenate([generated, held]))  # ties get average ranks
    u = ranks[:m].sum() - m * (m + 1) / 2
    return float((u - (m * n / 2 - 0.5)) / np.sqrt(m * n * (m + n + 1) / 12))


def _nn_distance(train: np.ndarray, x: np.ndarray) -> np.ndarray:
    return metrics.nearest_neighbours(train, x)[0] if len(x) else np.zeros(0)


def _cells(train: np.ndarray, cells: int, seed: int):
    """k-means cells of the training set: (cell of each training point, assign function)."""
    if cells <= 1:
        return np.zeros(len(train), int), lambda x: np.zeros(len(x), int)
    # a few thousand points at most: OpenMP workers only add spin-waiting on a busy machine
    with threadpool_limits(limits=1, user_api="openmp"):
        km = KMeans(n_clusters=cells, n_init=3, random_state=seed).fit(train)
    return km.labels_, km.predict


def data_copying_ct(train: np.ndarray, held: np.ndarray, generated: np.ndarray, *,
                    cells: int = 5, min_generated: int = 20, seed: int = 0) -> dict:
    """Meehan et al.'s (2020) data-copying statistic C_T, following their reference code.

    The training set is cut into ``cells`` by k-means. In each cell, the distances of
    held-out (test) and generated points to their nearest training point *of the same
    cell* are compared by :func:`mann_whitney_z`. Cells are used only when they hold more
    than ``min_generated`` generated samples (their ``tau = 20 / m``) and at least one
    held-out point; C_T is the average of the used cells' Z weighted by each cell's share
    of held-out points. ``value`` is None when no cell qualifies.

    Returns ``value`` (C_T), ``cells``, ``cells_used`` and the used cells' z-scores.
    """
    train, held, generated = (np.asarray(a, np.float64) for a in (train, held, generated))
    cells = int(max(1, min(cells, len(train) // 10)))
    none = {"value": None, "cells": cells, "cells_used": 0, "z": []}
    if len(train) < 2 or not len(held) or len(generated) <= min_generated:
        return none
    train_cell, assign = _cells(train, cells, seed)
    held_cell, gen_cell = assign(held), assign(generated)
    zs, weights = [], []
    for c in range(cells):
        t, h, g = train[train_cell == c], held[held_cell == c], generated[gen_cell == c]
        if len(g) > min_generated and len(h) and len(t):
            zs.append(mann_whitney_z(_nn_distance(t, g), _nn_distance(t, h)))
            weights.append(len(h) / len(held))
    if not zs:
        return none
    return {"value": float(np.average(zs, weights=weights)), "cells": cells,
            "cells_used": len(zs), "z": [float(z) for z in zs]}


def worst_examples(generated_nn_distance: np.ndarray, generated_nn_index: np.ndarray,
                   reference_ids: list[str], flags: np.ndarray, limit: int = 10) -> list[dict]:
    """The flagged generated samples closest to a training image, closest first."""
    idx = np.flatnonzero(flags)
    idx = idx[np.argsort(generated_nn_distance[idx], kind="stable")][:limit]
    return [{"generated_index": int(i), "nearest_train_id": reference_ids[int(generated_nn_index[i])],
             "distance": float(generated_nn_distance[i])} for i in idx]


