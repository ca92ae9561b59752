"""Export: a Hugging Face DatasetDict read back by `datasets`, and an ImageFolder tree."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from datakit.cli import main
from datakit.manifest.export import class_folder_names, export, safe_name
from datakit.manifest.model import PARQUET_META_KEY


@pytest.fixture
def two_split_manifest(make_manifest, tmp_path):
    from datakit.composition.build import compose
    m = make_manifest({"0": 6, "A": 6, "a": 4}, size=8)
    return compose([m.path], tmp_path / "split.parquet", holdout=0.25)


def test_hf_export_reads_back_with_datasets(two_split_manifest, tmp_path):
    datasets = pytest.importorskip("datasets")
    m = two_split_manifest
    export(m, tmp_path / "hf", "hf")
    d = datasets.load_from_disk(str(tmp_path / "hf"))
    assert sorted(d) == sorted(set(m.table["split"]))
    assert d["train"].features["label"].names == m.vocabulary
    assert type(d["train"].features["image"]).__name__ == "Image"
    total = sum(len(d[s]) for s in d)
    assert total == len(m)
    row = d["test"][0]
    ours = m.table.set_index("id").loc[row["id"]]
    assert row["label"] == ours["label"]
    assert row["image"].size == (8, 8) and row["image"].mode == "L"   # H×W: no channel axis
    assert np.array_equal(np.asarray(row["image"]), m.images(np.asarray([ours["row"]]))[0, ..., 0])


def test_imagefolder_tree(two_split_manifest, tmp_path):
    m = two_split_manifest
    result = export(m, tmp_path / "tree", "imagefolder")
    files = sorted((tmp_path / "tree").rglob("*.png"))
    assert len(files) == len(m) and result["splits"] == m.stats["split_counts"]
    mapping = json.loads((tmp_path / "tree" / "classes.json").read_text())
    assert mapping["folders"] == ["0", "upper_A", "lower_a"]  # A/a clash on case-blind disks
    one = m.table.iloc[0]
    f = tmp_path / "tree" / one["split"] / "0" / (one["id"].replace("/", "_") + ".png")
    assert np.array_equal(np.asarray(Image.open(f)), m.images(np.asarray([one["row"]]))[0, ..., 0])
    from datakit.sources.folder import ingest_folder  # the tree reads back as a folder source
    back = ingest_folder(tmp_path / "tree" / "train", size=8, channels=1, out=tmp_path / "o", workers=0)
    assert len(back) == m.stats["split_counts"]["train"]


def test_unsafe_class_names_are_escaped():
    assert safe_name("a/b") == "a%2Fb" and safe_name("..") == "%2E." and safe_name("x:y") == "x%3Ay"
    names = class_folder_names(["/", ".", "ok", "b", "B"])
    assert names == {"/": "%2F", ".": "%2E", "ok": "ok", "b": "lower_b", "B": "upper_B"}
    assert len(set(n.lower() for n in names.values())) == 5


def test_existing_out_and_cli(two_split_manifest, tmp_path):
    m = two_split_manifest
    (tmp_path / "x").mkdir()
    r = CliRunner().invoke(main, ["export", str(m.path), "--format", "hf", "--out", str(tmp_path / "x")])
    assert r.exit_code == 1
    assert r.output == f"Error: {tmp_path / 'x'} already exists. Choose another --out or pass --overwrite.\n"
    r = CliRunner().invoke(main, ["export", str(m.path), "--format", "imagefolder", "--out",
                                  str(tmp_path / "x"), "--overwrite", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["splits"] == m.stats["split_counts"]


def test_parquet_schema_metadata_holds_classes_and_geometry(two_split_manifest):
    meta = pq.read_schema(two_split_manifest.path).metadata
    info = json.loads(meta[PARQUET_META_KEY])
    assert info["classes"] == ["0", "A", "a"]
    assert info["geometry"] == {"height": 8, "width": 8, "channels": 1}
