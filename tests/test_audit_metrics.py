"""Cross-checks of the audit metrics against direct implementations of their definitions."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from datakit.audit.stats import amplification, calibration
from datakit.audit.stats.memorisation import mann_whitney_z
from datakit.errors import DatakitError
from datakit.judge import metrics


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


# -- exact ties, degenerate radii, unnamed classes, FD bias, KID subsets, C_T ------------
def _prdc_integer_brute(real, fake, k):
    """The PRDC definitions on integer points with exact integer squared distances and `<=`."""
    def kth_sq(x):
        d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(2)
        return np.sort(d2, axis=1)[:, k]
    rr, fr = kth_sq(real), kth_sq(fake)
    d2 = ((fake[:, None, :] - real[None, :, :]) ** 2).sum(2)  # fake × real, exact integers
    return {"precision": (d2 <= rr[None, :]).any(1).mean(), "recall": (d2 <= fr[:, None]).any(0).mean(),
            "density": (d2 <= rr[None, :]).sum() / (k * len(fake)),
            "coverage": (d2.min(0) <= rr).mean()}


@pytest.mark.parametrize("k", [1, 3, 5])
def test_prdc_counts_exact_ties_as_inside(k):
    """Points on a small integer grid: duplicates and equal distances everywhere; half the
    fake points are copies of real ones. Every tie at a ball's radius counts as inside."""
    rng = np.random.default_rng(k)
    real = rng.integers(0, 3, (150, 3)) * 7.3
    fake = np.concatenate([real[rng.choice(150, 40)], rng.integers(0, 3, (40, 3)) * 7.3])
    want = _prdc_integer_brute(np.round(real / 7.3).astype(int), np.round(fake / 7.3).astype(int), k)
    got = metrics.prdc(real, fake, k=k, chunk_elems=500)
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-12), key


def test_copies_sit_at_distance_zero_and_at_the_radius_of_their_original():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(50, 7)) * 1e3
    rel = metrics.neighbour_relations(real, real[:10].copy(), k=3)
    assert (rel.fake_nn_distance == 0).all()
    # a copy of real point j lies exactly on the ball of every real point whose 3rd NN is j
    np.testing.assert_array_equal(rel.fake_in_real_balls >= 1, True)


def test_close_pair_share_with_zero_radius_is_a_share():
    from datakit.audit.stats.collapse import close_pair_share
    x = np.repeat(np.arange(5.0)[:, None], 4, axis=0) * np.ones((1, 3))  # 5 points, 4 copies each
    assert close_pair_share(x, 0.0) == pytest.approx(5 * 6 / (20 * 19 / 2))  # the copy pairs only
    assert close_pair_share(np.arange(6.0)[:, None], 0.0) == 0.0
    assert close_pair_share(np.arange(6.0)[:, None], 1.0) == pytest.approx(5 / 15)  # neighbours, `<=`
    assert np.isnan(close_pair_share(np.arange(6.0)[:, None], float("nan")))


def test_close_pair_statistic_counts_a_generator_s_copies_but_not_a_resample_s_repeats():
    from datakit.audit.stats.collapse import close_pair_share, close_pair_statistic
    x = np.repeat(np.arange(5.0)[:, None], 4, axis=0) * np.ones((1, 3))  # 5 points, 4 copies each
    stat = close_pair_statistic(x, 0.0)
    assert stat(np.arange(20)) == pytest.approx(close_pair_share(x, 0.0))
    # a bootstrap resample drawing the same sample 3 times makes no pair of it with itself
    spread = np.arange(6.0)[:, None]
    assert close_pair_statistic(spread, 0.5)(np.array([0, 0, 0, 1, 2, 3])) == 0.0
    assert close_pair_statistic(spread, 1.0)(np.array([0, 0, 1])) == pytest.approx(1.0)  # one distinct pair


def test_amplification_names_a_class_missing_from_training_as_most_amplified():
    # class "b" has no training image but 30% of the generated samples
    table = amplification.share_table(["a", "b", "c", "d"], np.array([0, 0, 2, 2, 3, 3]),
                                      np.array([0, 1, 1, 1, 2, 2, 2, 3, 3, 3]), "conditioning labels")
    assert table["rows"][1]["ratio"] is None
    assert table["most_amplified"] == "b"
    assert table["most_suppressed"] == "a"
    healthy = amplification.share_table(["a", "b"], np.array([0, 1, 1]), np.array([0, 0, 1]), "x")
    assert (healthy["most_amplified"], healthy["most_suppressed"]) == ("a", "b")


def test_kid_says_when_it_shrank_the_subset():
    real, fake = _gaussians(n_real=300, n_fake=250, d=4)
    small = metrics.kid(real, fake, subset_size=1000, subsets=2)
    assert (small["subset_size"], small["requested_subset_size"], small["subset_shrunk"]) == (250, 1000, True)
    full = metrics.kid(real, fake, subset_size=100, subsets=2)
    assert (full["subset_size"], full["subset_shrunk"]) == (100, False)


def _population_fd_trials(shift, scale, trials=40, n=400, d=8):
    """Coverage of the population FD = d·shift² + d·(1-scale)² (N(0,I) vs N(shift, scale²I))."""
    true = d * shift ** 2 + d * (1 - scale) ** 2
    hits_inf = hits_n = 0
    for t in range(trials):
        rng = np.random.default_rng(1000 + t)
        real, fake = rng.normal(size=(n, d)), rng.normal(size=(n, d)) * scale + shift
        r = calibration.fd_infinity(real, fake, replicates=20, seed=t)
        hits_inf += r["ci_low"] <= true <= r["ci_high"]
        lo, hi = calibration.fd_interval(real, fake, replicates=20, seed=t)
        hits_n += lo <= true <= hi
    return hits_inf / trials, hits_n / trials


def test_fd_infinity_covers_the_population_fd():
    """Measured (seeded, 40 trials, 400 vs 400 samples in 8-D, 20 bootstrap replicates):
    FD∞'s nominal 95% interval covers the population FD in 35/40 trials at FD=1.04 and
    37/40 at FD=0; the spread of FD at this sample size covers it in 28/40 and 1/40."""
    cover_inf, cover_n = _population_fd_trials(0.3, 1.2)
    assert cover_inf >= 0.85
    cover_inf0, cover_n0 = _population_fd_trials(0.0, 1.0)
    assert cover_inf0 >= 0.85
    assert cover_n0 < 0.2  # FD_N is biased: its own spread does not reach the population value


def test_fd_infinity_removes_the_small_sample_bias():
    """Two samples of one Gaussian (population FD 0), 10 draws: FD_N sits well above 0,
    FD∞ averages near 0."""
    fd_n, fd_inf = [], []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        real, fake = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
        fd_n.append(metrics.fd(real, fake))
        out = calibration.fd_infinity(real, fake, replicates=2, seed=seed)
        fd_inf.append(out["value"])
    assert np.mean(fd_n) > 0.1
    assert abs(np.mean(fd_inf)) < 0.3 * np.mean(fd_n)
    assert len(out["sizes"]) == len(out["fd_at_sizes"]) == len(calibration.FD_FRACTIONS)


def _ct_transcribed(test, test_cells, gen, gen_cells, train, train_cells, tau):
    """Meehan et al. 2020, transcribed from their reference code (data_copying_tests.py:
    Zu, Zu_cells, C_T) with scipy's Mann-Whitney U and brute-force nearest neighbours."""
    from scipy.stats import mannwhitneyu

    def zu(pn, qm, t):
        lqm = np.linalg.norm(qm[:, None] - t[None], axis=2).min(1)
        lpn = np.linalg.norm(pn[:, None] - t[None], axis=2).min(1)
        u = mannwhitneyu(lqm, lpn, alternative="less").statistic
        m, n = len(qm), len(pn)
        return (u - (n * m / 2 - 0.5)) / np.sqrt(n * m * (n + m + 1) / 12)

    k = train_cells.max() + 1
    m, n = len(gen), len(test)
    qm_share = np.bincount(gen_cells, minlength=k) / m
    pn_share = np.bincount(test_cells, minlength=k) / n
    used = qm_share > tau
    z = np.array([zu(test[test_cells == i], gen[gen_cells == i], train[train_cells == i])
                  if used[i] else 0.0 for i in range(k)])
    return pn_share[used] @ z[used] / pn_share[used].sum()


def _ct_world(seed=0, n_train=600, n_test=300, n_gen=400):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 3)) * 6
    draw = lambda n: centres[rng.integers(0, 4, n)] + rng.normal(size=(n, 3))  # noqa: E731
    return draw(n_train), draw(n_test), draw(n_gen), rng


@pytest.mark.parametrize("case", ["copies", "fresh", "noisy"])
def test_data_copying_ct_matches_the_transcribed_definition(case):
    from sklearn.cluster import KMeans

    from datakit.audit.stats.memorisation import data_copying_ct
    train, test, fresh, rng = _ct_world()
    gen = {"copies": train[rng.choice(len(train), 400)] + rng.normal(size=(400, 3)) * 0.01,
           "fresh": fresh, "noisy": fresh + rng.normal(size=fresh.shape) * 1.0}[case]
    got = data_copying_ct(train, test, gen, cells=6, seed=3)
    km = KMeans(n_clusters=6, n_init=3, random_state=3).fit(train)
    want = _ct_transcribed(test, km.predict(test), gen, km.predict(gen), train, km.labels_, 20 / len(gen))
    assert got["value"] == pytest.approx(want, rel=1e-9)
    assert got["cells_used"] == 6
    expected = {"copies": lambda v: v < -5, "fresh": lambda v: abs(v) < 2, "noisy": lambda v: v > 3}
    assert expected[case](got["value"]), got["value"]


def test_data_copying_ct_uses_only_cells_with_more_than_20_generated_samples():
    from datakit.audit.stats.memorisation import data_copying_ct
    train, test, gen, _ = _ct_world()
    assert data_copying_ct(train, test, gen[:20], cells=1)["value"] is None  # 20 is not > 20
    assert data_copying_ct(train, test, gen[:21], cells=1)["cells_used"] == 1
    # with 4 well-separated clusters as cells and 60 samples from one cluster only, one cell qualifies
    one = gen[np.linalg.norm(gen - gen[0], axis=1) < 4][:60]
    out = data_copying_ct(train, test, one, cells=4, seed=0)
    assert out["cells_used"] == 1
