"""Statistics: counts, balance, distributions, duplicates, near-duplicates, leakage; `datakit stats`."""
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from datakit.cli import main
from datakit.manifest.duplicates import perceptual_hash
from datakit.manifest.stats import balance, compute_stats, format_stats_table
from datakit.manifest.write import write_manifest
from datakit.sources.common import build_table


def smooth_images(n, size=16, seed=0):
    """Distinct images with real structure (upsampled 4x4 random fields), values 40..200."""
    rng = np.random.default_rng(seed)
    low = rng.integers(40, 200, (n, 4, 4), dtype=np.uint8)
    return np.kron(low, np.ones((size // 4, size // 4), dtype=np.uint8))[..., None]


def manifest_from(tmp_path, images, classes, splits, name="m", subset="s"):
    records = [{"id": f"{name}/{i}", "dataset": "toy", "subset": subset, "split": sp,
                "domain": "handwritten", "label": int(c), "class_name": str(c),
                "source": f"gen:{i}", "orig_width": 16 + i % 3, "orig_height": 16, "orig_mode": "L"}
               for i, (c, sp) in enumerate(zip(classes, splits))]
    return write_manifest(tmp_path / f"{name}.parquet", build_table(records, images), images,
                          {"command": "test"})


def test_balance_known_answers():
    assert balance({"a": 10, "b": 10}) == {"imbalance_ratio": 1.0, "normalised_entropy": 1.0, "gini": 0.0}
    b = balance({"a": 90, "b": 10})
    assert b["imbalance_ratio"] == pytest.approx(9.0)
    p = np.array([0.9, 0.1])
    assert b["normalised_entropy"] == pytest.approx(-(p * np.log(p)).sum() / np.log(2))
    assert b["gini"] == pytest.approx(0.4)  # (2*1-3)*10 + (2*2-3)*90 = 80; 80 / (2*100)
    # a class with no images does not make the ratio infinite
    assert balance({"a": 5, "b": 0, "c": 5})["imbalance_ratio"] == 1.0


def test_counts_missing_and_rare_classes(make_manifest):
    m = make_manifest({"0": 12, "1": 3, "2": 0, "3": 7}, size=8)
    s = m.stats
    assert s["images"] == 22
    assert s["class_counts"] == {"0": 12, "1": 3, "2": 0, "3": 7}
    assert s["missing_classes"] == ["2"]
    assert s["low_count_classes"] == ["1", "3"]
    assert s["subset_counts"] == {"toy": 22} and s["domain_counts"] == {"handwritten": 22}
    assert s["split_counts"] == {"train": 22}
    assert s["class_counts_by_split"] == {"train": {"0": 12, "1": 3, "3": 7}}
    assert s["exact_duplicates"]["groups"] == 0 and s["near_duplicates"]["groups"] == 0
    again = compute_stats(m.table, m.pixels, classes=m.vocabulary, low_count=5)
    assert again["low_count_classes"] == ["1"] and again["low_count_threshold"] == 5


def test_size_and_intensity_per_subset(tmp_path):
    images = np.zeros((6, 16, 16, 1), dtype=np.uint8)
    images[3:] = 255
    m = manifest_from(tmp_path, images, [0, 1, 0, 1, 0, 1], ["train"] * 6)
    s = m.stats
    size = s["image_size"]["s"]
    assert size["width"]["q0"] == 16 and size["width"]["q100"] == 18
    assert size["most_common"] == {"16x16": 2, "17x16": 2, "18x16": 2}
    inten = s["intensity"]["s"]
    assert inten["mean"] == pytest.approx(127.5)
    assert inten["histogram"][0] == pytest.approx(0.5) and inten["histogram"][-1] == pytest.approx(0.5)
    assert sum(inten["histogram"]) == pytest.approx(1.0)


def test_perceptual_hash_ignores_brightness_and_resizing_but_not_content():
    base = smooth_images(20, size=16)
    brighter = base + np.uint8(7)
    assert np.array_equal(perceptual_hash(base), perceptual_hash(brighter))
    bigger = np.repeat(np.repeat(base, 2, axis=1), 2, axis=2)  # 32x32, same picture
    assert np.array_equal(perceptual_hash(base), perceptual_hash(bigger))
    assert len(set(perceptual_hash(base).tolist())) == 20  # distinct pictures, distinct hashes
    rgb = np.repeat(base, 3, axis=3)
    assert np.array_equal(perceptual_hash(base), perceptual_hash(rgb))


def test_exact_near_duplicates_and_leakage(tmp_path):
    imgs = smooth_images(8)
    # rows 0..7 distinct; 8 = exact copy of 0 (test split: leak); 9 = exact copy of 1 (train);
    # 10 = brighter copy of 2 (near, in test: near leak)
    images = np.concatenate([imgs, imgs[[0, 1]], imgs[[2]] + np.uint8(5)])
    classes = [0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0]
    splits = ["train"] * 8 + ["test", "train", "test"]
    s = manifest_from(tmp_path, images, classes, splits).stats
    ex = s["exact_duplicates"]
    assert (ex["groups"], ex["images"], ex["redundant"]) == (2, 4, 2)
    near = s["near_duplicates"]
    assert (near["groups"], near["images"]) == (1, 2)
    assert sorted(near["examples"][0]["ids"]) == ["m/10", "m/2"]
    assert s["leakage"]["exact"]["groups"] == 1
    assert s["leakage"]["exact"]["split_pairs"] == {"test/train": 1}
    assert sorted(s["leakage"]["exact"]["examples"][0]["ids"]) == ["m/0", "m/8"]
    assert s["leakage"]["near"]["groups"] == 2 and s["leakage"]["near"]["images"] == 4
    json.dumps(s)  # the sidecar must hold it


def test_mnist_sized_batch_has_no_false_duplicates():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (5000, 28, 28, 1), dtype=np.uint8)
    from datakit.manifest.model import pixel_sha256
    n = len(pixels)
    table = pd.DataFrame({"id": [f"i{i}" for i in range(n)], "class_name": [str(i % 10) for i in range(n)],
                          "subset": "train", "domain": "handwritten", "split": "train",
                          "orig_width": 28, "orig_height": 28, "sha256": pixel_sha256(pixels),
                          "row": np.arange(n)})
    s = compute_stats(table, pixels, classes=[str(d) for d in range(10)])
    assert s["class_counts"] == {str(d): 500 for d in range(10)}
    assert s["exact_duplicates"]["groups"] == 0 and s["near_duplicates"]["groups"] == 0


def test_text_table_side_by_side(make_manifest):
    a = make_manifest({"0": 4, "1": 2}, name="a")
    b = make_manifest({"0": 3, "1": 3}, name="b", seed=1)
    text = format_stats_table([a.stats, b.stats], ["a", "b"])
    lines = text.splitlines()
    assert lines[0].split() == ["a", "b"]
    assert lines[2].split() == ["images", "6", "6"]
    ratio = next(line for line in lines if line.startswith("imbalance ratio"))
    assert ratio.split() == ["imbalance", "ratio", "2", "1"]
    assert next(line for line in lines if line.startswith("class 0")).split() == ["class", "0", "4", "3"]


def test_cli_stats_text_json_and_errors(make_manifest, tmp_path):
    m = make_manifest({"0": 4, "1": 2, "2": 1})
    runner = CliRunner()
    r = runner.invoke(main, ["stats", str(m.path), "--min-count", "3"])
    assert r.exit_code == 0, r.output
    assert "classes < 3" in r.output and "class 2" in r.output
    r = runner.invoke(main, ["stats", str(m.path), "--json", "--min-count", "3"])
    assert r.exit_code == 0
    data = json.loads(r.output)
    assert data["class_counts"] == {"0": 4, "1": 2, "2": 1}
    assert data["low_count_classes"] == ["1", "2"]
    r = runner.invoke(main, ["stats", str(tmp_path / "nope.parquet")])
    assert r.exit_code == 1
    assert r.output == (f"Error: Manifest not found: {tmp_path / 'nope.parquet'}. Pass the .parquet file "
                        "written by `datakit ingest` or `datakit compose`.\n")


def test_cli_stats_json_for_several_manifests_is_a_list_in_argument_order(make_manifest):
    a = make_manifest({"0": 2, "1": 2}, name="a")
    b = make_manifest({"0": 3}, name="b", seed=1)
    r = CliRunner().invoke(main, ["stats", str(a.path), str(b.path), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert [d["manifest"] for d in data] == [str(a.path), str(b.path)]
    assert data[1]["class_counts"] == {"0": 3}
