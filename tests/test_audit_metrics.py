"""Cross-checks of the audit metrics against direct implementations of their definitions."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from datakit.audit import amplification, calibration, metrics
from datakit.audit.memorisation import mann_whitney_z
from datakit.errors import DatakitError


def _gaussians(n_real=300, n_fake=250, d=8, shift=0.3, seed=0):
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(n_real, d))
    fake = rng.normal(size=(n_fake, d)) * 1.2 + shift
    return real, fake


def _fd_sqrtm(real, fake):
    """The textbook formula with scipy's general matrix square root."""
    mu1, mu2 = real.mean(0), fake.mean(0)
    s1, s2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def _prdc_brute(real, fake, k):
    """Kynkäänniemi et al. 2019 / Naeem et al. 2020, written out with explicit loops over pairs."""
    def kth(x):
        d = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=2)
        return np.sort(d, axis=1)[:, k]  # column 0 is the point itself
    rr, fr = kth(real), kth(fake)
    d = np.linalg.norm(fake[:, None, :] - real[None, :, :], axis=2)  # fake × real
    precision = np.mean([any(d[j, i] <= rr[i] for i in range(len(real))) for j in range(len(fake))])
    recall = np.mean([any(d[j, i] <= fr[j] for j in range(len(fake))) for i in range(len(real))])
    density = sum(d[j, i] <= rr[i] for j in range(len(fake)) for i in range(len(real))) / (k * len(fake))
    coverage = np.mean([min(d[:, i]) <= rr[i] for i in range(len(real))])
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


@pytest.mark.parametrize("d", [4, 16])
def test_frechet_distance_matches_scipy_sqrtm(d):
    real, fake = _gaussians(d=d)
    assert metrics.fd(real, fake) == pytest.approx(_fd_sqrtm(real, fake), rel=1e-6)


def test_frechet_distance_of_a_set_with_itself_is_zero():
    real, _ = _gaussians()
    assert metrics.fd(real, real) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_prdc_matches_brute_force_definitions(k):
    real, fake = _gaussians(n_real=120, n_fake=90, d=5)
    got = metrics.prdc(real, fake, k=k)
    want = _prdc_brute(real, fake, k)
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-6), key
    assert 0 < got["precision"] < 1 and 0 < got["coverage"] < 1  # a non-trivial case


def test_chunked_knn_equals_unchunked():
    """Tiny blocks (a few rows at a time) give exactly the same relations as one block."""
    real, fake = _gaussians(n_real=200, n_fake=150, d=6)
    one = metrics.neighbour_relations(real, fake, k=5)
    tiny = metrics.neighbour_relations(real, fake, k=5, chunk_elems=700)
    np.testing.assert_array_equal(one.fake_in_real_balls, tiny.fake_in_real_balls)
    np.testing.assert_array_equal(one.real_in_fake_ball, tiny.real_in_fake_ball)
    np.testing.assert_array_equal(one.fake_nn_index, tiny.fake_nn_index)
    np.testing.assert_allclose(one.real_radii, tiny.real_radii, rtol=1e-12)


def test_knn_radii_and_nearest_neighbours_match_brute_force():
    real, fake = _gaussians(n_real=80, n_fake=60, d=3)
    d_rr = np.linalg.norm(real[:, None] - real[None], axis=2)
    np.testing.assert_allclose(metrics.knn_radii(real, 3), np.sort(d_rr, 1)[:, 3], rtol=1e-9)
    rel = metrics.neighbour_relations(real, fake, k=3)
    d_fr = np.linalg.norm(fake[:, None] - real[None], axis=2)
    np.testing.assert_array_equal(rel.fake_nn_index, d_fr.argmin(1))
    np.testing.assert_allclose(rel.fake_nn_distance, d_fr.min(1), rtol=1e-9)


def test_kid_matches_direct_mmd_formula():
    real, fake = _gaussians(n_real=60, n_fake=60, d=4)
    d = real.shape[1]
    k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
    m = len(real)
    kxx, kyy, kxy = k(real, real), k(fake, fake), k(real, fake)
    want = ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * kxy.mean())
    # one subset as large as both sets = the full-set unbiased MMD²
    assert metrics.kid(real, fake, subset_size=m, subsets=1)["value"] == pytest.approx(want, rel=1e-9)


def test_kid_needs_two_samples():
    with pytest.raises(DatakitError, match="KID needs at least 2 samples"):
        metrics.kid(np.zeros((1, 3)), np.zeros((5, 3)))


def test_divergences_known_values():
    p, q = np.array([0.5, 0.5]), np.array([0.25, 0.75])
    out = amplification.divergences(p, q)
    assert out["tv"] == pytest.approx(0.25)
    assert out["kl"] == pytest.approx(0.5 * np.log(2) + 0.5 * np.log(0.5 / 0.75), rel=1e-6)
    assert amplification.divergences(q, q)["js"] == pytest.approx(0.0, abs=1e-9)


def test_mann_whitney_z_sign():
    rng = np.random.default_rng(0)
    held = rng.uniform(1, 2, 50)
    assert mann_whitney_z(held * 0.1, held) < -5      # generated much closer: copying
    assert mann_whitney_z(held * 10, held) > 5        # much farther: underfitting
    assert abs(mann_whitney_z(rng.uniform(1, 2, 50), held)) < 3


def test_fd_bootstrap_interval_contains_estimate():
    real, fake = _gaussians(n_real=400, n_fake=400, d=4)
    lo, hi = calibration.fd_interval(real, fake, replicates=40)
    assert lo <= metrics.fd(real, fake) <= hi
