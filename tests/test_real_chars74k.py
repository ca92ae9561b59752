"""Chars74K from the real archives in $DATAKIT_DATA/chars74k: the published totals."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import real_data_dir

from datakit.manifest.model import CHARS62
from datakit.sources.chars74k import ingest_chars74k

pytestmark = pytest.mark.realdata


def test_goodimg_7705_wild_colour_crops(tmp_path):
    m = ingest_chars74k(real_data_dir("chars74k"), subset="GoodImg", out=tmp_path)
    counts = m.stats["class_counts"]
    assert len(m) == 7705 and m.geometry.shape == (32, 32, 3)
    assert list(counts) == CHARS62 and m.stats["missing_classes"] == []
    assert min(counts.values()) == counts["8"] == 32       # Sample009
    assert max(counts.values()) == counts["A"] == 558      # Sample011
    assert set(m.table["domain"]) == {"wild"} and set(m.table["subset"]) == {"GoodImg"}
    assert m.table["orig_width"].nunique() > 100            # natural crops of many sizes
    assert m.meta["skipped"] == []


@pytest.mark.slow
def test_fnt_62992_from_the_archive(tmp_path):
    m = ingest_chars74k(real_data_dir("chars74k", "EnglishFnt.tgz"), subset="fnt", out=tmp_path)
    assert len(m) == 62992 and m.geometry.shape == (32, 32, 1)
    assert set(m.stats["class_counts"].values()) == {1016}
    assert set(m.table["orig_width"]) == {128} and set(m.table["orig_mode"]) == {"L"}
    assert m.table["source"].iloc[0] == "EnglishFnt.tgz:English/Fnt/Sample001/img001-00001.png"
    px = m.images()[::997, :, :, 0]
    assert np.median(px[:, 0, :]) == 255 and px.min() == 0  # black glyphs on white


@pytest.mark.slow
def test_hnd_3410_cropped_to_the_ink(tmp_path):
    m = ingest_chars74k(real_data_dir("chars74k"), subset="Hnd", out=tmp_path)
    assert len(m) == 3410 and set(m.stats["class_counts"].values()) == {55}
    assert set(m.table["domain"]) == {"handwritten"} and m.geometry.channels == 1
    assert set(zip(m.table["orig_width"], m.table["orig_height"])) == {(1200, 900)}
    # Cropped to the ink: strokes cover a good share of every frame, not a speck on paper.
    ink_share = (m.images()[..., 0] < 128).mean(axis=(1, 2))
    assert np.median(ink_share) > 0.12
