"""Partial collapse (the ``modes`` check) on features with known modes, and the registry."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from datakit.audit import AuditConfig
from datakit.audit.checks import modes as modes_check
from datakit.audit.registry import CheckResult, register_check, registered_checks, unregister_check
from datakit.audit.reuse import Reuse
from datakit.audit.stats import floors
from datakit.audit.stats.modes import assign_modes, fit_modes, modes_covered, recall_statistic


def _blobs(n_per: int, centres: np.ndarray, rng, spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    which = np.repeat(np.arange(len(centres)), n_per)
    return centres[which] + spread * rng.normal(size=(len(which), centres.shape[1])), which


@pytest.fixture
def five_modes():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 16)) * 12  # clearly separated: gaps >> spread
    return rng, centres


def test_the_number_of_modes_is_read_from_the_data(five_modes):
    rng, centres = five_modes
    real, _ = _blobs(60, centres, rng)
    assert fit_modes(real).k == 5
    one = rng.normal(size=(300, 16))  # no clear modes: cut into 5 k-means regions instead
    model = fit_modes(one)
    assert (model.kind, model.k) == ("regions", 5) and model.silhouette < 0.25
    assert fit_modes(one[:10]).k == 1  # too few to cut into regions


def test_far_off_samples_cover_nothing(five_modes):
    rng, centres = five_modes
    model = fit_modes(_blobs(60, centres, rng)[0])
    far = centres[:1] + 100.0
    assert (assign_modes(model, far) == -1).all()
    assert modes_covered(model, assign_modes(model, np.repeat(far, 20, 0))) == 0


def _features(real, held, gen):
    """A stand-in for AuditFeatures holding one class (what the modes check reads)."""
    return SimpleNamespace(classes=["a"], reference=SimpleNamespace(features=real),
                           reference_labels=np.zeros(len(real), int),
                           reference_ids=[f"real/{i}" for i in range(len(real))], held=SimpleNamespace(features=held),
                           held_labels=np.zeros(len(held), int), generated=SimpleNamespace(features=gen),
                           assigned=np.zeros(len(gen), int), reuse=Reuse())


def test_two_of_five_modes_is_partial_collapse_and_real_images_are_not(five_modes):
    rng, centres = five_modes
    real, _ = _blobs(80, centres, rng)
    held, _ = _blobs(20, centres, rng)
    two, _ = _blobs(50, centres[:2], rng)
    cfg = AuditConfig(bootstrap=100)
    bad = modes_check.check(_features(real, held, two), cfg)
    row = bad.table[0]
    assert (row["modes_real"], row["modes_covered"], row["modes_covered_floor"]) == (5, 2, 5)
    assert row["vs_floor"]["modes"].worse
    assert row["_modes_evidence"].startswith("class a: covers 2 of 5 real modes (held-out real images cover 5, "
                                             "both at n = 100); the largest mode it misses holds 20% of its "
                                             "real images and got 0 of its 100 samples (20 expected); its "
                                             "samples reach ")
    assert row["vs_floor"]["recall"].worse  # the three dropped modes' real images are unreached too
    assert [f.classes for f in bad.findings] == [["a"], ["a"]] and bad.findings[0].severity == "fail"
    fresh, _ = _blobs(20, centres, rng)
    good = modes_check.check(_features(real, held, fresh), cfg)
    assert not good.table[0]["vs_floor"]["modes"].worse and good.findings == []
    assert not good.table[0]["vs_floor"]["recall"].worse


def test_recall_is_the_share_of_real_points_inside_the_samples_k_nn_balls():
    real = np.array([[0.0], [1.0], [10.0]])
    samples = np.array([[0.0], [0.5], [2.0], [20.0]])
    stat = recall_statistic(real, samples, k=1)
    # 1-NN radii among the samples: 0.5, 0.5, 1.5, 18 -> 0 and 1 are inside (0 at 0, 1 within 1.5
    # of 2), and so is 10 (within 18 of 20)
    assert stat(np.arange(4)) == 1.0
    assert stat(np.arange(3)) == pytest.approx(2 / 3)  # without the far sample, 10 is unreached
    # a bootstrap resample's repeats are one sample: a repeat is not its own neighbour at 0
    assert stat(np.array([0, 0, 1, 2])) == stat(np.array([0, 1, 2]))
    # one distinct sample: radius 0, it reaches only an identical real image
    assert stat(np.array([3, 3])) == 0.0 and stat(np.array([0])) == pytest.approx(1 / 3)


def test_recall_counts_a_generator_s_identical_outputs_once():
    """Exact repeats are collapse evidence, not a way to shrink the k-NN balls: 10 copies of
    each of 3 samples read as those 3 samples (before, each copy was its own neighbour at 0 and
    the balls shrank to the points themselves)."""
    real = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])
    distinct = np.array([[0.0], [2.0], [3.0]])
    repeated = np.repeat(distinct, 10, axis=0)
    once = recall_statistic(real, distinct, k=1)(np.arange(3))
    assert recall_statistic(real, repeated, k=1)(np.arange(30)) == once == pytest.approx(4 / 5)
    # a total collapse to one image reaches (almost) nothing
    assert recall_statistic(real, np.repeat([[0.5]], 30, axis=0), k=5)(np.arange(30)) == 0.0


def test_recall_minimum_effect_is_half_the_floor_miss_rate_and_at_least_two_points():
    assert floors.recall_min_effect(0.90) == pytest.approx(0.05)
    assert floors.recall_min_effect(0.99) == pytest.approx(0.02)


def _styles(n: int, rng, keep=range(5)) -> np.ndarray:
    """A class without clear modes whose images come in 5 hidden styles: the style is the sector
    of the angle in the first two of 8 dimensions, which a generator may drop."""
    out = []
    while sum(map(len, out)) < n:
        x = rng.normal(size=(4 * n, 8))
        style = ((np.arctan2(x[:, 1], x[:, 0]) + np.pi) / (2 * np.pi) * 5).astype(int) % 5
        out.append(x[np.isin(style, list(keep))])
    return np.concatenate(out)[:n]


def test_two_of_five_hidden_styles_is_partial_collapse_by_recall_and_real_styles_are_not():
    rng = np.random.default_rng(7)
    real, held = _styles(600, rng), _styles(150, rng)
    cfg = AuditConfig(bootstrap=100)
    bad = modes_check.check(_features(real, held, _styles(200, rng, keep=(0, 1))), cfg).table[0]
    # the samples still land in all 5 k-means regions, so the mode count cannot see it
    assert (bad["modes_covered"], bad["modes_covered_floor"]) == (5, 5) and not bad["vs_floor"]["modes"].worse
    assert bad["vs_floor"]["recall"].worse
    assert "its samples reach" in bad["_modes_evidence"] and "of its real images against" in bad["_modes_evidence"]
    for seed in (8, 9, 10):  # healthy controls: fresh images of every style
        good = modes_check.check(_features(real, held, _styles(200, np.random.default_rng(seed))), cfg)
        assert not good.table[0]["vs_floor"]["recall"].worse and good.findings == []


def test_a_user_check_registers_like_the_built_ins():
    def always(f, cfg):
        return CheckResult("always", None, 1.0, "one", [])
    register_check("always", always)
    try:
        names = list(registered_checks())
        assert names[:3] == ["judge", "label_fidelity", "collapse"] and names[-1] == "always"
    finally:
        unregister_check("always")
    assert "always" not in registered_checks()


def test_a_class_without_clear_modes_reaching_two_of_five_regions_is_collapsed():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(400, 16))
    model = fit_modes(real)
    fresh = rng.normal(size=(3000, 16))
    two = fresh[np.isin(assign_modes(model, fresh), [0, 1])][:100]
    held, healthy = rng.normal(size=(100, 16)), rng.normal(size=(100, 16))
    cfg = AuditConfig(bootstrap=100)
    bad = modes_check.check(_features(real, held, two), cfg)
    row = bad.table[0]
    assert (row["modes_real"], row["modes_covered"], row["modes_covered_floor"]) == (5, 2, 5)
    assert [f.classes for f in bad.findings] == [["a"]]
    assert "covers 2 of 5 k-means regions of its real images" in bad.findings[0].sentence
    assert bad.findings[0].evidence["kind"] == "regions"
    good = modes_check.check(_features(real, held, healthy), cfg)
    assert not good.table[0]["vs_floor"]["modes"].worse and good.findings == []


def test_a_missed_mode_is_named_with_its_share_and_the_real_images_nearest_its_centre(five_modes):
    rng, centres = five_modes
    weights = np.array([40, 80, 120, 160, 200])  # mode j holds weights[j] of 600 real images
    real = np.concatenate([centres[j] + rng.normal(size=(w, 16)) for j, w in enumerate(weights)])
    held = np.concatenate([centres[j] + rng.normal(size=(w // 4, 16)) for j, w in enumerate(weights)])
    # the samples miss modes 1 and 3 entirely
    gen = np.concatenate([centres[j] + rng.normal(size=(w // 4, 16)) for j, w in enumerate(weights) if j in (0, 2, 4)])
    bad = modes_check.check(_features(real, held, gen), AuditConfig(bootstrap=100))
    missed = bad.findings[0].evidence["missed"]
    # largest first: mode 3 (160 of 600 real images), then mode 1 (80)
    assert [round(m["real_share"], 3) for m in missed] == [round(160 / 600, 3), round(80 / 600, 3)]
    assert [m["got"] for m in missed] == [0, 0]
    assert missed[0]["expected"] == pytest.approx(len(gen) * 160 / 600, rel=0.02)
    # its examples are real images of mode 3 (ids 240..399), the 16 nearest its centre
    mode3 = range(40 + 80 + 120, 40 + 80 + 120 + 160)
    ids = [int(i.split("/")[1]) for i in missed[0]["examples"]]
    assert len(ids) == modes_check.MISSED_EXAMPLES and set(ids) <= set(mode3)
    dist = np.linalg.norm(real[list(mode3)] - real[list(mode3)].mean(0), axis=1)
    assert np.median(dist[[i - mode3.start for i in ids]]) < np.median(dist)
    assert "the largest mode it misses holds 27% of its real images and got 0 of its" in bad.findings[0].sentence


def test_one_style_drawn_over_and_over_holds_near_duplicate_pairs_and_fresh_samples_do_not():
    from datakit.audit.checks import collapse as collapse_check
    rng = np.random.default_rng(0)
    real, held = rng.normal(size=(600, 8)), rng.normal(size=(200, 8))
    pool = rng.normal(size=(5000, 8))
    # one style: the tenth of the class nearest one of its images; diverse enough not to be a
    # total collapse (diversity 0.7 of real), but its samples crowd together
    style = pool[np.argsort(np.linalg.norm(pool - pool[0], axis=1))[:500]]
    one = style[rng.choice(len(style), 200, replace=False)]
    bad = collapse_check.check(_features(real, held, one), AuditConfig(bootstrap=100))
    test = bad.table[0]["vs_floor"]["close_pairs"]
    assert not bad.table[0]["collapsed"] and bad.table[0]["diversity_ratio"] > 0.5
    assert test.worse and test.value > 4 * test.floor
    assert [f.evidence["test"] for f in bad.findings] == ["close_pairs"]
    assert bad.findings[0].sentence.startswith("Class a holds many near-duplicate samples: ")
    assert set(bad.replicates) == {"close_pairs"} and len(bad.replicates["close_pairs"]["a"]) == 100
    for seed in (1, 2, 3):  # healthy controls: fresh images of the whole class
        fresh = np.random.default_rng(seed).normal(size=(200, 8))
        good = collapse_check.check(_features(real, held, fresh), AuditConfig(bootstrap=100))
        assert not good.table[0]["vs_floor"]["close_pairs"].worse and good.findings == []
