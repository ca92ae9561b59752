"""MNIST from the real files in $DATAKIT_DATA/mnist: the published totals (skipped without the data)."""
from __future__ import annotations

import pytest
from conftest import real_data_dir

from datakit.manifest.read import read_manifest
from datakit.sources._io import download
from datakit.sources.mnist import ingest_mnist

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def real_mnist(tmp_path_factory):
    return ingest_mnist(real_data_dir("mnist"), out=tmp_path_factory.mktemp("real-mnist"))


def test_published_totals(real_mnist):
    m = read_manifest(real_mnist.path)
    assert m.stats["split_counts"] == {"test": 10_000, "train": 60_000}
    assert m.pixels.shape == (70_000, 28, 28, 1)
    train = m.table[m.table["split"] == "train"]
    per_class = train["class_name"].value_counts()
    assert per_class["1"] == 6_742 and per_class["5"] == 5_421
    assert sorted(m.stats["class_counts"]) == [str(d) for d in range(10)]


def test_inputs_are_the_official_files(real_mnist):
    official = download.RESOURCES["mnist"]
    for item in real_mnist.meta["inputs"]:
        name = item["path"].rsplit("/", 1)[-1]
        assert official[name].checksum == "md5:" + item["md5"]


def test_pixels_look_like_mnist(real_mnist):
    # White ink on black: most pixels are 0, the ink is near 255; digits are roughly centred.
    images = real_mnist.images(range(1000))
    assert (images == 0).mean() > 0.75 and images.max() == 255
    ink = images[..., 0].astype(float).sum(axis=0)
    rows, cols = ink.sum(axis=1), ink.sum(axis=0)
    centre = (rows * range(28)).sum() / rows.sum(), (cols * range(28)).sum() / cols.sum()
    assert all(12.5 < c < 15.5 for c in centre)
