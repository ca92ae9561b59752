"""compose on the real datasets (DATAKIT_DATA): Chars74K GoodImg + Fnt at 30% synthetic,
and MNIST skewed step:0.1; the shares are checked against the source counts."""
import time

import numpy as np
import pytest
from conftest import real_data_dir

from datakit.composition.build import compose
from datakit.report.dataset import render_dataset_report

pytestmark = pytest.mark.realdata


def test_goodimg_plus_fnt_at_30_percent_synthetic(tmp_path):
    from datakit.sources.chars74k import ingest_chars74k

    root = real_data_dir("chars74k")
    good = ingest_chars74k(root, subset="GoodImg", classes="digits", out=tmp_path)
    fnt = ingest_chars74k(root, subset="Fnt", classes="digits", out=tmp_path)
    mix = compose([good, fnt], tmp_path / "mix.parquet", fraction="domain=synthetic:0.3",
                  polarity="dark-on-light", seed=0)
    n, wild = len(mix), len(good)
    syn = int((mix.table["domain"] == "synthetic").sum())
    # the smaller natural-scene part limits the total: all of it is kept
    assert int((mix.table["domain"] == "wild").sum()) == wild
    assert syn == round(wild / 0.7 * 0.3)
    assert abs(syn / n - 0.3) <= 1 / n
    assert mix.stats["domain_counts"] == {"synthetic": syn, "wild": wild}
    assert mix.geometry.shape == (good.geometry.height, good.geometry.width, 3)
    # the synthetic part is stratified by class (Fnt has 1,016 of each digit)
    per_class = mix.table[mix.table["domain"] == "synthetic"]["class_name"].value_counts()
    assert per_class.max() - per_class.min() <= 1 and len(per_class) == 10
    # dark-on-light: the border of every image is lighter than its average
    px = np.asarray(mix.pixels, dtype=np.float32).mean(axis=3)
    border = np.concatenate([px[:, 0], px[:, -1], px[:, :, 0], px[:, :, -1]], axis=1).mean(axis=1)
    assert (border >= px.reshape(n, -1).mean(axis=1)).mean() == 1.0
    page = render_dataset_report([good, fnt, mix], tmp_path / "audit.html")
    assert page.read_text().count('<section class="dk-composition">') == 3


def test_mnist_skewed_step_keeps_the_requested_shares(tmp_path):
    from datakit.sources.mnist import ingest_mnist

    src = ingest_mnist(real_data_dir("mnist"), split="train", out=tmp_path)
    avail = src.stats["class_counts"]
    t0 = time.perf_counter()
    m = compose([src], tmp_path / "skew.parquet", skew="step:0.1", holdout=0.2, seed=0)
    print(f"compose of {len(src)} MNIST images with step:0.1 + holdout: {time.perf_counter() - t0:.2f} s")
    top = min(min(avail[str(d)] for d in range(5)), min(avail[str(d)] for d in range(5, 10)) / 0.1)
    got = m.stats["class_counts"]
    assert all(got[str(d)] == int(top) for d in range(5))
    assert all(got[str(d)] == int(np.floor(top * 0.1)) for d in range(5, 10))
    share = sum(got[str(d)] for d in range(5, 10)) / sum(got.values())
    assert share == pytest.approx(0.1 / 1.1, abs=1e-3)
    # the held-out split is stratified and no image (exact or near copy) crosses it; near-copy
    # groups (within 2 hash bits) move whole, so the share is 0.2 to within half a percent
    assert m.stats["split_counts"]["test"] == pytest.approx(0.2 * len(m), rel=5e-3)
    assert m.stats["leakage"]["near"]["groups"] == 0 and m.stats["leakage"]["exact"]["groups"] == 0
