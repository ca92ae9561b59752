"""Known answer for the study layer on a real tiny study (trained and audited, not made up):
an arm whose training images are pure noise is conclusively worse than a healthy arm, and an
arm with the same healthy images under another name is not told apart from it.

Margins (800 digits, 100 steps, width 8, one thread; measured over the four 3-seed subsets of
seeds 0-3 on the development machine): FD noise − healthy, interval low end +0.67 to +1.09
(per-seed differences +1.3 to +2.0); the same-data control's FD interval always straddles 0
with at least 0.056 on each side. Label fidelity also separates, but its interval's high end
was only −0.012 to −0.037, so the test asserts its sign only. With two seeds (Student's t on
1 degree of freedom, ×12.7) only 2 of 6 seed pairs were conclusive at 150 steps, so the
study uses three.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from datakit.manifest.write import write_manifest
from datakit.sources.common import build_table
from datakit.study.runner import run_study
from datakit.study.spec import load_study

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

STUDY = """
[study]
name = "noise_arm"
seeds = [0, 1, 2]

[train]
model = "acgan"
steps = 100
width = 8
batch_size = 16
n_generate = 20
log_every = 10

[audit]
cas = false
bootstrap = 10
max_reference = 400
kid_subset_size = 100
kid_subsets = 3
judge = {{ epochs = 2, max_train_images = 600 }}

[[arm]]
name = "healthy"
manifest = "{healthy}"

[[arm]]
name = "healthy_again"
manifest = "{shuffled}"

[[arm]]
name = "noise"
manifest = "{noise}"

[compare]
reference = "healthy"
contrasts = [["healthy", "noise"], ["healthy", "healthy_again"]]
"""


def _records(table):
    return table.drop(columns=["sha256", "row"]).to_dict("records")


def _three_manifests(digits, folder, n=800):
    """The first ``n`` digits (healthy); the same rows with uniform-noise pixels (same
    classes, splits and geometry); and the healthy images in another store order, so that
    arm's runs differ from the healthy ones by training noise only."""
    rng = np.random.default_rng(0)
    table = digits.table.sort_values("row").iloc[:n]
    pixels = np.asarray(digits.pixels)[table["row"].to_numpy()]
    healthy = write_manifest(folder / "healthy.parquet", build_table(_records(table), pixels),
                             pixels, {"command": "test: healthy"}, classes=digits.vocabulary)
    noise = rng.integers(0, 256, pixels.shape, dtype=np.uint8)
    order = rng.permutation(len(table))
    noisy = write_manifest(folder / "noise.parquet", build_table(_records(table), noise), noise,
                           {"command": "test: pure noise"}, classes=digits.vocabulary)
    shuffled = write_manifest(folder / "shuffled.parquet",
                              build_table(_records(table.iloc[order]), pixels[order]),
                              pixels[order], {"command": "test: shuffled"},
                              classes=digits.vocabulary)
    return healthy, noisy, shuffled


def test_a_noise_arm_is_conclusively_worse_and_a_same_data_arm_is_not(digits_manifest, tmp_path):
    healthy, noise, shuffled = _three_manifests(digits_manifest, tmp_path)
    path = tmp_path / "noise_arm.toml"
    path.write_text(STUDY.format(healthy=healthy.path, shuffled=shuffled.path,
                                 noise=noise.path))
    result = run_study(load_study(path), out=tmp_path / "out", device="cpu", threads=1)
    summary = json.loads(result.summary.read_text())
    c = {(x["b"], x["metric"]): x for x in summary["contrasts"]}

    # planted: noise vs healthy, FD (lower is better) conclusively higher
    fd = c[("noise", "fd")]
    assert fd["n_seeds"] == 3 and fd["conclusive"] and fd["ci_low"] > 0, fd["sentence"]
    assert "noise is worse than healthy (conclusive)" in fd["sentence"]
    assert c[("noise", "label_fidelity")]["difference"] < 0  # the judge reads noise as one class
    warns = [f["sentence"] for f in summary["findings"] if f["severity"] == "warn"]
    assert any(w.startswith("noise is worse than healthy on FD") for w in warns), warns

    # control: the same images under another name are not told apart
    for metric in ("fd", "label_fidelity"):
        same = c[("healthy_again", metric)]
        assert not same["conclusive"] and same["ci_low"] < 0 < same["ci_high"], same["sentence"]
        assert "inconclusive at this budget" in same["sentence"]
    assert not any("healthy_again" in w for w in warns)
