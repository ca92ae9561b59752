"""Known answers of the per-class floor rules (datakit.audit.stats.floors) and the share expectation."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from datakit.audit.checks import shares
from datakit.audit.stats import floors


# Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10 (hybrid score).
@pytest.mark.parametrize("x1,n1,x2,n2,lo,hi", [
    (56, 70, 48, 80, 0.0524, 0.3339),
    (9, 10, 3, 10, 0.1705, 0.8090),
    (5, 56, 0, 29, -0.0381, 0.1926),
    (0, 10, 0, 20, -0.1611, 0.2775),
    (0, 10, 0, 10, -0.2775, 0.2775),
    (10, 10, 0, 20, 0.6791, 1.0000),
    (10, 10, 0, 10, 0.6075, 1.0000),
])
def test_newcombe_interval_matches_the_published_examples(x1, n1, x2, n2, lo, hi):
    assert floors.newcombe_interval(x1, n1, x2, n2) == pytest.approx((lo, hi), abs=1e-4)


def test_clearly_worse_needs_the_whole_interval_beyond_the_minimum_effect():
    # healthy_mnist_s0's class 6: FD 7.9 vs floor 4.9, CI +0.3 to +9.6, minimum effect 2.45
    assert not floors.is_worse(3.0, 0.3, 9.6, "lower", 2.45)
    assert floors.is_worse(6.0, 2.5, 9.6, "lower", 2.45)
    assert not floors.is_worse(-0.2, -0.3, -0.05, "higher", 0.10)
    assert floors.is_worse(-0.5, -0.6, -0.10, "higher", 0.10)


def _fidelity_test(ok_gen: int, n_gen: int, ok_held: int, n_held: int):
    g = np.r_[np.ones(ok_gen), np.zeros(n_gen - ok_gen)]
    h = np.r_[np.ones(ok_held), np.zeros(n_held - ok_held)]
    test, _ = floors.floor_test(lambda i: g[i].mean(), lambda i: h[i].mean(), n_gen, n_held,
                                better="higher", min_effect=floors.MIN_POINTS, replicates=50, seed=0,
                                size_matched=False, min_n=1, proportion_of=(n_gen, n_held))
    return test


def test_a_perfect_small_floor_is_not_a_certain_floor():
    # chars74k class 2: 87% of generated vs 13/13 held-out: Newcombe's interval reaches past 0
    test = _fidelity_test(174, 200, 13, 13)
    assert test.ci_high > 0 and not test.worse


def test_too_few_images_never_fail_but_the_same_gap_with_enough_does():
    assert not _fidelity_test(0, 200, 13, 13).worse          # n = 13 < MIN_CLASS_N
    assert _fidelity_test(0, 200, 40, 40).worse               # planted: nothing read right
    assert not _fidelity_test(190, 200, 39, 40).worse          # healthy control


def _biased_reading(true: np.ndarray, rng) -> np.ndarray:
    """A judge that reads 60% of class 2 as class 0 (and everything else right)."""
    pred = true.copy()
    twos = np.flatnonzero(true == 2)
    pred[twos[rng.random(len(twos)) < 0.6]] = 0
    return pred


def _share_fails(gen_true: np.ndarray, rng) -> list[int]:
    held = np.repeat(np.arange(3), 300)
    expected = shares.expected_read_shares(np.full(3, 1 / 3), shares.judge_read_matrix(held, _biased_reading(held, rng), 3))
    pred = _biased_reading(gen_true, rng)
    return [c for c in range(3) if floors.share_test(pred, c, expected[c], replicates=200, seed=0)[0].worse]


def test_a_biased_judge_does_not_make_a_faithful_generator_look_biased():
    rng = np.random.default_rng(0)
    gen = np.repeat(np.arange(3), 400)
    assert _share_fails(gen, rng) == []
    # without the adjustment the same reading would call class 2 suppressed (×0.4)
    assert floors.share_test(_biased_reading(gen, rng), 2, 1 / 3, replicates=200, seed=0)[0].worse


def test_a_suppressed_class_is_still_named_through_a_biased_judge():
    rng = np.random.default_rng(1)
    gen = np.r_[np.repeat(0, 400), np.repeat(1, 20), np.repeat(2, 400)]  # class 1 at 2.4%
    assert _share_fails(gen, rng) == [1]


def test_requested_shares_follow_the_declared_label_distribution():
    def feats(conditional, dist):
        return SimpleNamespace(classes=["a", "b"], train_counts=np.array([900, 100]), conditional=conditional,
                               run=SimpleNamespace(config={"label_dist": dist} if dist else {}),
                               generated_labels=np.array([0, 0, 0, 1]))
    assert shares.requested_shares(feats(True, "uniform"))[0].tolist() == [0.5, 0.5]
    assert shares.requested_shares(feats(True, "train"))[0].tolist() == [0.9, 0.1]
    assert shares.requested_shares(feats(False, "uniform"))[0].tolist() == [0.9, 0.1]
    assert shares.requested_shares(feats(True, None))[0].tolist() == [0.75, 0.25]


def test_the_expected_share_carries_the_uncertainty_of_a_small_perfect_held_out_set():
    held = np.repeat(np.arange(3), 13)  # every class read right 13 times out of 13
    reps = shares.expected_replicates(np.full(3, 1 / 3), held, held.copy(), 3, 200, seed=0)
    assert reps.std(0).min() > 0.01 and np.allclose(reps.sum(1), 1)
