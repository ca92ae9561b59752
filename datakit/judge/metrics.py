"""Whole-set sample-quality metrics in judge feature space, as small pure functions.

Each metric is a chain features -> statistics -> number:

- Fréchet distance: :func:`gaussian_stats` -> :func:`frechet_distance`.
- KID (kernel inception distance with the judge's features): :func:`kid`.
- Precision / recall (Kynkäänniemi et al. 2019) and density / coverage (Naeem et al. 2020):
  :func:`knn_radii` + :func:`neighbour_relations` -> :func:`prdc_from_relations`.

The k-NN work runs in chunks of rows (``chunk_elems`` distances at a time, float64, on the
given torch device), so memory stays bounded for 100,000 images per side; the same pass
also yields each generated sample's nearest real image (used by memorisation).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from datakit.errors import DatakitError

DEFAULT_CHUNK_ELEMS = 1 << 22  # 4M float64 distances (32 MiB) per block


def _device(device: str | torch.device | None) -> torch.device:
    return torch.device(device) if device is not None else torch.device("cpu")


# -- Fréchet distance ----------------------------------------------------------------
def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of N×D features, in float64."""
    f = np.asarray(features, dtype=np.float64)
    if len(f) < 2:
        raise DatakitError(f"A Fréchet distance needs at least 2 samples, got {len(f)}.")
    return f.mean(0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||² + Tr(S1 + S2 - 2 (S1 S2)^½) between two Gaussians.

    Tr((S1 S2)^½) is computed as the sum of square roots of the eigenvalues of the
    symmetric PSD matrix S1^½ S2 S1^½ (same eigenvalues as S1 S2), which is exact and
    stable where a general matrix square root can return complex noise.
    """
    r1 = _psd_sqrt(sigma1)
    m = r1 @ sigma2 @ r1
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_sqrt, 0.0))


def fd(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet distance between two feature sets."""
    return frechet_distance(*gaussian_stats(real), *gaussian_stats(fake))


# -- KID -----------------------------------------------------------------------------
def _poly_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a @ b.T).div_(a.shape[1]).add_(1.0).pow_(3)


def mmd2_unbiased(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> float:
    """Unbiased squared MMD with the cubic polynomial kernel (x·y/d + 1)³ (Bińkowski et al. 2018)."""
    x, y = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64, device=x.device)
    m, n = len(x), len(y)
    kxx, kyy = _poly_kernel(x, x), _poly_kernel(y, y)
    kxy_mean = _poly_kernel(x, y).mean()
    return float((kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
                 + (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1)) - 2 * kxy_mean)


def kid(real: np.ndarray, fake: np.ndarray, *, subset_size: int = 1000, subsets: int = 50,
        seed: int = 0, device=None) -> dict[str, float]:
    """KID: mean of unbiased MMD² over random subsets of both sets (and their spread).

    Returns ``value`` (the mean), ``std`` and the 2.5/97.5 percentiles of the per-subset
    estimates (``p025``/``p975``): a conservative interval for the mean, since it is the
    spread of a single subset's estimate. ``subset_size`` is the size actually used: when a
    set is smaller than the requested ``subset_size`` it shrinks to the smaller set, and
    ``subset_shrunk`` is True with ``requested_subset_size`` beside it (KID values at
    different subset sizes are not comparable: the per-subset spread grows as they shrink).
    """
    dev = _device(device)
    r = torch.as_tensor(np.asarray(real, np.float64), device=dev)
    f = torch.as_tensor(np.asarray(fake, np.float64), device=dev)
    m = min(subset_size, len(r), len(f))
    if m < 2:
        raise DatakitError(f"KID needs at least 2 samples per set, got {len(r)} and {len(f)}.")
    rng = np.random.default_rng(seed)
    vals = np.array([mmd2_unbiased(r[torch.as_tensor(rng.choice(len(r), m, replace=False), device=dev)],
                                   f[torch.as_tensor(rng.choice(len(f), m, replace=False), device=dev)])
                     for _ in range(subsets)])
    return {"value": float(vals.mean()), "std": float(vals.std()), "subset_size": int(m),
            "requested_subset_size": int(subset_size), "subset_shrunk": bool(m < subset_size),
            "p025": float(np.percentile(vals, 2.5)), "p975": float(np.percentile(vals, 97.5))}


# -- k-NN relations, chunked -----------------------------------------------------------
def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # Direct differences, not |a|²+|b|²-2ab: the distance of a pair then depends only on
    # the two vectors, so a copy of a point is at exactly 0 and ties are exact (a fake copy
    # of real point j is exactly as far from real point i as j is, which the `<=` ball
    # tests of PRDC and close-pair counts rely on). Every k-NN radius and every
    # comparison below uses distances from this one function.
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")


def neighbour_distances(features: np.ndarray, k: int = 5, *, device=None,
                        chunk_elems: int = DEFAULT_CHUNK_ELEMS) -> np.ndarray:
    """N×k array: column j-1 is each sample's distance to its j-th nearest *other* sample.

    One chunked pass serves every k at once (1-NN for memorisation, k-NN radii for PRDC).
    """
    dev = _device(device)
    x = torch.as_tensor(np.asarray(features, np.float64), device=dev)
    n = len(x)
    if n <= k:
        raise DatakitError(f"k-NN radii with k={k} need more than {k} samples, got {n}.")
    rows = max(1, chunk_elems // n)
    out = torch.empty((n, k), dtype=torch.float64, device=dev)
    for i in range(0, n, rows):
        d = _distances(x[i:i + rows], x)
        # k+1 smallest: the sample itself (distance exactly 0) is among them and is dropped.
        out[i:i + rows] = d.topk(k + 1, dim=1, largest=False).values[:, 1:]
    return out.cpu().numpy()


def knn_radii(features: np.ndarray, k: int = 5, *, device=None,
              chunk_elems: int = DEFAULT_CHUNK_ELEMS) -> np.ndarray:
    """Distance from each sample to its k-th nearest *other* sample in the same set."""
    return neighbour_distances(features, k, device=device, chunk_elems=chunk_elems)[:, k - 1]


@dataclass
class NeighbourRelations:
    """Per-sample facts from one chunked pass of generated (fake) against real features.

    Attributes:
        fake_in_real_balls: for each fake sample, how many real k-NN balls contain it.
        fake_nn_distance / fake_nn_index: each fake sample's nearest real sample.
        real_nn_fake_distance: each real sample's nearest fake sample.
        real_in_fake_ball: whether each real sample lies in some fake k-NN ball.
        real_radii / fake_radii: the k-NN radii used; k: the k.
    """

    fake_in_real_balls: np.ndarray
    fake_nn_distance: np.ndarray
    fake_nn_index: np.ndarray
    real_nn_fake_distance: np.ndarray
    real_in_fake_ball: np.ndarray
    real_radii: np.ndarray
    fake_radii: np.ndarray | None
    k: int


def neighbour_relations(real: np.ndarray, fake: np.ndarray, *, k: int = 5,
                        real_radii: np.ndarray | None = None, fake_radii: np.ndarray | None = None,
                        with_fake_radii: bool = True, device=None,
                        chunk_elems: int = DEFAULT_CHUNK_ELEMS) -> NeighbourRelations:
    """Compare every fake sample with every real one, a block of fake rows at a time."""
    dev = _device(device)
    if real_radii is None:
        real_radii = knn_radii(real, k, device=dev, chunk_elems=chunk_elems)
    if fake_radii is None and with_fake_radii:
        fake_radii = knn_radii(fake, k, device=dev, chunk_elems=chunk_elems)
    r = torch.as_tensor(np.asarray(real, np.float64), device=dev)
    f = torch.as_tensor(np.asarray(fake, np.float64), device=dev)
    # Distances against radii computed by the same function: a tie is exact, and a sample
    # on the boundary of a ball is inside it (`<=`, as NVlabs' precision-recall code).
    rr = torch.as_tensor(real_radii, device=dev)
    fr = torch.as_tensor(fake_radii, device=dev) if fake_radii is not None else None
    n_real, n_fake = len(r), len(f)
    in_balls = torch.empty(n_fake, dtype=torch.int64, device=dev)
    nn_d = torch.empty(n_fake, dtype=torch.float64, device=dev)
    nn_i = torch.empty(n_fake, dtype=torch.int64, device=dev)
    real_nn = torch.full((n_real,), float("inf"), dtype=torch.float64, device=dev)
    real_hit = torch.zeros(n_real, dtype=torch.bool, device=dev)
    rows = max(1, chunk_elems // max(1, n_real))
    for i in range(0, n_fake, rows):
        d = _distances(f[i:i + rows], r)
        in_balls[i:i + rows] = (d <= rr[None, :]).sum(1)
        nn_d[i:i + rows], nn_i[i:i + rows] = d.min(1)
        real_nn = torch.minimum(real_nn, d.min(0).values)
        if fr is not None:
            real_hit |= (d <= fr[i:i + rows, None]).any(0)
    return NeighbourRelations(in_balls.cpu().numpy(), nn_d.cpu().numpy(), nn_i.cpu().numpy(),
                              real_nn.cpu().numpy(), real_hit.cpu().numpy(), np.asarray(real_radii),
                              None if fake_radii is None else np.asarray(fake_radii), k)


def nearest_neighbours(reference: np.ndarray, queries: np.ndarray, *, device=None,
                       chunk_elems: int = DEFAULT_CHUNK_ELEMS) -> tuple[np.ndarray, np.ndarray]:
    """Distance to, and index of, each query's nearest reference sample (chunked)."""
    dev = _device(device)
    r = torch.as_tensor(np.asarray(reference, np.float64), device=dev)
    q = torch.as_tensor(np.asarray(queries, np.float64), device=dev)
    dist = torch.empty(len(q), dtype=torch.float64, device=dev)
    index = torch.empty(len(q), dtype=torch.int64, device=dev)
    rows = max(1, chunk_elems // max(1, len(r)))
    for i in range(0, len(q), rows):
        dist[i:i + rows], index[i:i + rows] = _distances(q[i:i + rows], r).min(1)
    return dist.cpu().numpy(), index.cpu().numpy()


def precision(rel: NeighbourRelations) -> float:
    """Share of fake samples inside (``<=``) at least one real k-NN ball (Kynkäänniemi et al. 2019)."""
    return float((rel.fake_in_real_balls > 0).mean())


def recall(rel: NeighbourRelations) -> float:
    """Share of real samples inside at least one fake k-NN ball (Kynkäänniemi et al. 2019)."""
    return float(rel.real_in_fake_ball.mean())


def density(rel: NeighbourRelations) -> float:
    """Mean number of real k-NN balls holding a fake sample, divided by k (Naeem et al. 2020)."""
    return float(rel.fake_in_real_balls.sum() / (rel.k * len(rel.fake_in_real_balls)))


def coverage(rel: NeighbourRelations) -> float:
    """Share of real samples whose k-NN ball holds at least one fake sample (Naeem et al. 2020)."""
    return float((rel.real_nn_fake_distance <= rel.real_radii).mean())


def prdc_from_relations(rel: NeighbourRelations) -> dict[str, float]:
    """Precision, recall, density and coverage from one :class:`NeighbourRelations`."""
    out = {"precision": precision(rel), "density": density(rel), "coverage": coverage(rel)}
    out["recall"] = recall(rel) if rel.fake_radii is not None else float("nan")
    return out


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5, **kwargs) -> dict[str, float]:
    """Precision, recall, density, coverage of ``fake`` against ``real`` with k-NN balls."""
    return prdc_from_relations(neighbour_relations(real, fake, k=k, **kwargs))


def pairwise_distances(features: np.ndarray, *, max_samples: int = 2000,
                       seed: int = 0) -> torch.Tensor | None:
    """All pairwise Euclidean distances of a set (a seeded subsample above ``max_samples``),
    or None when there are fewer than two samples."""
    x = np.asarray(features, np.float64)
    if len(x) < 2:
        return None
    if len(x) > max_samples:
        x = x[np.random.default_rng(seed).choice(len(x), max_samples, replace=False)]
    t = torch.as_tensor(x)
    return _distances(t, t)


def mean_pairwise_distance(features: np.ndarray, *, max_samples: int = 2000, seed: int = 0) -> float:
    """Mean Euclidean distance over all pairs (a seeded subsample above ``max_samples``)."""
    d = pairwise_distances(features, max_samples=max_samples, seed=seed)
    if d is None:
        return float("nan")
    n = len(d)
    return float((d.sum() - d.diagonal().sum()) / (n * (n - 1)))
