"""Partial collapse (the ``modes`` check) on features with known modes, and the registry."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from datakit.audit import AuditConfig
from datakit.audit.checks import CheckResult, register_check, registered_checks, unregister_check
from datakit.audit.checks import modes as modes_check
from datakit.audit.modes import assign_modes, fit_modes, modes_covered


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
                           reference_labels=np.zeros(len(real), int), held=SimpleNamespace(features=held),
                           held_labels=np.zeros(len(held), int), generated=SimpleNamespace(features=gen),
                           assigned=np.zeros(len(gen), int))


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
    assert row["_modes_evidence"] == ("class a: covers 2 of 5 real modes (held-out real images cover 5, "
                                      "both at n = 100).")
    assert [f.classes for f in bad.findings] == [["a"]] and bad.findings[0].severity == "fail"
    fresh, _ = _blobs(20, centres, rng)
    good = modes_check.check(_features(real, held, fresh), cfg)
    assert not good.table[0]["vs_floor"]["modes"].worse and good.findings == []


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
