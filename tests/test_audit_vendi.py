"""Known answers of the Vendi check (datakit/audit/checks/vendi.py)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from datakit.audit import AuditConfig
from datakit.audit.checks import vendi
from datakit.audit.registry import registered_checks
from datakit.audit.reuse import Reuse
from datakit.sources.digits import load_digits_arrays


def test_identical_samples_score_one():
    x = np.tile(np.random.default_rng(0).normal(size=(1, 16)), (20, 1))
    assert vendi.vendi_score(x) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("n", [1, 5, 12])
def test_orthogonal_samples_score_n(n):
    assert vendi.vendi_score(np.eye(n) * 3.0) == pytest.approx(n, rel=1e-9)
    assert vendi.vendi_score(np.eye(n, 40)) == pytest.approx(n, rel=1e-9)  # more dimensions than samples


@pytest.mark.parametrize("k", [2, 3, 7])
def test_k_equal_clusters_of_identical_points_score_k(k):
    rng = np.random.default_rng(k)
    q, _ = np.linalg.qr(rng.normal(size=(32, k)))  # k orthonormal directions
    x = np.repeat(q.T, 9, axis=0)
    assert vendi.vendi_score(x) == pytest.approx(k, rel=1e-9)


def test_runs_last_and_fails_no_class():
    assert list(registered_checks())[-1] == "vendi"
    assert all(m.failure_reason is None for m in vendi.METRICS)


def test_collapsed_class_is_far_below_its_floor_healthy_class_near_it():
    """Real held-out images for a healthy class vs one image repeated for a collapsed class."""
    images, labels = load_digits_arrays()
    x = images.reshape(len(images), -1).astype(np.float64)
    rng = np.random.default_rng(0)
    gen, gen_lab, held, held_lab = [], [], [], []
    for lab in (0, 1):
        idx = rng.permutation(np.flatnonzero(labels == lab))
        half = len(idx) // 2
        held.append(x[idx[:half]])
        held_lab.append(np.full(half, lab))
        g = x[idx[half:]] if lab == 0 else np.repeat(x[idx[half:half + 1]], len(idx) - half, axis=0)
        gen.append(g)
        gen_lab.append(np.full(len(g), lab))
    f = SimpleNamespace(classes=["healthy", "collapsed"], reference=SimpleNamespace(features=x),
                        generated=SimpleNamespace(features=np.vstack(gen)), assigned=np.concatenate(gen_lab),
                        held=SimpleNamespace(features=np.vstack(held)), held_labels=np.concatenate(held_lab),
                        reuse=Reuse())
    r = vendi.check(f, AuditConfig(bootstrap=50))
    healthy, collapsed = r.table
    assert collapsed["vendi"] == pytest.approx(1.0) and collapsed["vendi_ratio"] < 0.5
    assert collapsed["vs_floor"]["vendi"].worse
    t = healthy["vs_floor"]["vendi"]
    ratio_lo, ratio_hi = 1 + t.ci_low / t.floor, 1 + t.ci_high / t.floor
    assert 0.8 < healthy["vendi_ratio"] < 1.25
    assert ratio_lo - 0.1 <= 1.0 <= ratio_hi + 0.1
