"""Memorisation: generated samples that sit closer to a training image than training
images sit to each other, and the data-copying test C_T of Meehan et al. (2020).

- Nearest-neighbour check: a generated sample is flagged when its distance to the
  nearest training image (judge features) is below the ``quantile`` of the training
  set's own 1-NN distances. Exact pixel copies are counted separately by hash.
- C_T: the space is cut into cells (k-means on training features); in each cell with
  enough generated and held-out samples, a Mann-Whitney U test compares the distances to
  the nearest training image of generated vs held-out real samples; the z-scores are
  averaged weighted by the held-out share of each cell. C_T << 0 (below about -3) means
  generated samples are systematically closer to training images than fresh real
  images are: data copying. C_T >> 0 means underfitting.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from datakit.audit import metrics


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
    """Z-score of the U statistic counting pairs where a generated distance exceeds a held-out one."""
    m, n = len(generated), len(held)
    ranks = rankdata(np.concatenate([generated, held]))  # ties get average ranks
    u = ranks[:m].sum() - m * (m + 1) / 2
    return float((u - m * n / 2) / np.sqrt(m * n * (m + n + 1) / 12))


def _nn_distance(train: np.ndarray, x: np.ndarray) -> np.ndarray:
    return metrics.nearest_neighbours(train, x)[0] if len(x) else np.zeros(0)


def data_copying_ct(train: np.ndarray, held: np.ndarray, generated: np.ndarray, *,
                    cells: int = 5, min_samples: int = 5, seed: int = 0) -> dict:
    """Meehan et al.'s C_T for one feature space; ``None`` value when no cell has enough samples.

    Returns ``value`` (C_T), the number of cells used, and per-cell z-scores.
    """
    train, held, generated = (np.asarray(a, np.float64) for a in (train, held, generated))
    cells = int(max(1, min(cells, len(train) // 10, len(held) // min_samples)))
    if len(train) < 2 or len(held) < min_samples or len(generated) < min_samples:
        return {"value": None, "cells": cells, "cells_used": 0, "z": []}
    km = None
    if cells > 1:
        # a few thousand points at most: OpenMP workers only add spin-waiting on a busy machine
        with threadpool_limits(limits=1, user_api="openmp"):
            km = KMeans(n_clusters=cells, n_init=3, random_state=seed).fit(train)
    cell_of = (lambda x: km.predict(x)) if km is not None else (lambda x: np.zeros(len(x), int))
    t = train
    held_cell, gen_cell = cell_of(held), cell_of(generated)
    held_d, gen_d = _nn_distance(t, held), _nn_distance(t, generated)
    zs, weights = [], []
    for c in range(cells):
        h, g = held_cell == c, gen_cell == c
        if h.sum() >= min_samples and g.sum() >= min_samples:
            zs.append(mann_whitney_z(gen_d[g], held_d[h]))
            weights.append(h.mean())
    if not zs:
        return {"value": None, "cells": cells, "cells_used": 0, "z": []}
    return {"value": float(np.average(zs, weights=weights)), "cells": cells,
            "cells_used": len(zs), "z": [float(z) for z in zs]}


def worst_examples(generated_nn_distance: np.ndarray, generated_nn_index: np.ndarray,
                   reference_ids: list[str], flags: np.ndarray, limit: int = 10) -> list[dict]:
    """The flagged generated samples closest to a training image, closest first."""
    idx = np.flatnonzero(flags)
    idx = idx[np.argsort(generated_nn_distance[idx], kind="stable")][:limit]
    return [{"generated_index": int(i), "nearest_train_id": reference_ids[int(generated_nn_index[i])],
             "distance": float(generated_nn_distance[i])} for i in idx]


def train_nn_distances(train: np.ndarray, **kwargs) -> np.ndarray:
    """Each training image's distance to its nearest other training image."""
    return metrics.knn_radii(train, 1, **kwargs)
