"""A class stands out when its gap to its own floor is clearly larger than its siblings' gaps."""
import numpy as np
import pytest

from datakit.audit.stats.standout import STANDOUT_ABOVE, STANDOUT_BELOW, ratio, standouts


def _tests(values, floors, spread=0.02, seed=0, worse=True):
    rng = np.random.default_rng(seed)
    return {str(i): (v, f, worse, (v - f) + rng.normal(0, spread, 200))
            for i, (v, f) in enumerate(zip(values, floors))}


def test_a_class_far_below_its_siblings_stands_out_on_recall():
    # every class is below real data (0.55-0.85 against 0.95): that is the run, not a class;
    # class 9 reaches 4% of its real images: that is the class
    values = [0.55, 0.6, 0.7, 0.75, 0.8, 0.85, 0.65, 0.7, 0.6, 0.04]
    s = standouts(_tests(values, [0.95] * 10), "higher")
    assert [c for c, x in s.items() if x.stands_out] == ["9"]
    assert s["9"].standout == pytest.approx((0.04 / 0.95) / np.median([v / 0.95 for v in values[:9]]))
    assert s["9"].ci_high < STANDOUT_BELOW


def test_when_every_class_is_equally_far_from_real_data_none_stands_out():
    s = standouts(_tests([0.3] * 10, [0.95] * 10), "higher")
    assert not any(x.stands_out for x in s.values())
    assert all(x.standout == pytest.approx(1.0) for x in s.values())


def test_fd_stands_out_above_a_multiple_of_the_siblings_ratio():
    values = [90, 100, 80, 110, 95, 105, 85, 100, 90, 2000]
    s = standouts(_tests(values, [9.0] * 10, spread=5), "lower")
    assert [c for c, x in s.items() if x.stands_out] == ["9"]
    assert s["9"].ci_low > STANDOUT_ABOVE


def test_a_class_no_worse_than_its_floor_never_stands_out():
    values = [0.2] * 9 + [0.9]
    s = standouts({**_tests(values, [0.95] * 10), "9": (0.01, 0.02, False, np.zeros(10))}, "higher")
    assert not s["9"].stands_out  # its floor test is not worse: it is not failed for standing out


def test_an_uncertain_gap_does_not_stand_out():
    # a point estimate below the threshold whose interval reaches past it: not clearly apart
    values = [0.8] * 9 + [0.3]
    s = standouts(_tests(values, [0.95] * 10, spread=0.3), "higher")
    assert s["9"].standout < STANDOUT_BELOW and s["9"].ci_high > STANDOUT_BELOW
    assert not s["9"].stands_out


def test_two_classes_have_no_siblings_to_compare_with():
    assert standouts(_tests([0.9, 0.01], [0.95, 0.95]), "higher") == {}
    assert ratio(0.5, 0.0) is None and ratio(None, 1.0) is None and ratio(2.0, 4.0) == 0.5


def test_the_only_class_below_real_data_stands_out_alone():
    # the others are at their floors (not worse); class 7 misses 8 points of recall: it is the
    # run's only gap, so it stands out though it is far above half of its siblings
    values = [0.95, 0.96, 0.94, 0.95, 0.96, 0.95, 0.94, 0.88, 0.95, 0.96]
    tests = {str(i): (v, 0.956, i == 7, (v - 0.956) + np.random.default_rng(i).normal(0, 0.01, 200))
             for i, v in enumerate(values)}
    s = standouts(tests, "higher")
    assert [c for c, x in s.items() if x.stands_out] == ["7"]
    # the same gap when another class is below real data too: not alone, and not far from the rest
    tests = {c: (v, f, c in ("7", "2"), r) for c, (v, f, _, r) in tests.items()}
    assert not any(x.stands_out for x in standouts(tests, "higher").values())
