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


# -- --overwrite replaces only an earlier export -------------------------------------------

def _export(*args):
    return CliRunner().invoke(main, ["export", *map(str, args)])


def test_overwrite_never_deletes_the_folder_of_the_manifest(make_manifest, tmp_path):
    m = make_manifest({"0": 3, "1": 3}, out=tmp_path / "m")
    before = sorted(p.name for p in (tmp_path / "m").iterdir())
    r = _export(m.path, "--format", "hf", "--out", tmp_path / "m", "--overwrite")
    assert r.exit_code == 1
    assert r.output == (f"Error: --out {tmp_path / 'm'} holds the manifest being exported "
                        "(toy.parquet); --overwrite would delete it. Pass a new folder with --out.\n")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == before
    r = _export(m.path, "--format", "hf", "--out", tmp_path, "--overwrite")  # a folder above it
    assert r.exit_code == 1 and "holds the manifest being exported" in r.output
    assert (tmp_path / "m" / "toy.pixels.npy").exists()


@pytest.mark.parametrize("out", [".", ".."])
def test_overwrite_never_deletes_the_current_folder_or_a_parent(make_manifest, tmp_path,
                                                                monkeypatch, out):
    m = make_manifest({"0": 3, "1": 3}, out=tmp_path / "m")
    (tmp_path / "work" / "sub").mkdir(parents=True)
    (tmp_path / "work" / "keep.txt").write_text("mine")
    monkeypatch.chdir(tmp_path / "work" / "sub")
    r = _export(m.path, "--format", "hf", "--out", out, "--overwrite")
    assert r.exit_code == 1
    assert r.output == (f"Error: --out {out} is the current directory or one of its parents; "
                        "--overwrite never replaces those. Pass a new folder with --out.\n")
    assert (tmp_path / "work" / "keep.txt").read_text() == "mine"
    assert (tmp_path / "work" / "sub").is_dir()


def test_overwrite_leaves_a_folder_datakit_did_not_export(make_manifest, tmp_path):
    m = make_manifest({"0": 3, "1": 3})
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    r = _export(m.path, "--format", "hf", "--out", tmp_path / "mine", "--overwrite")
    assert r.exit_code == 1
    assert r.output == (f"Error: --out {tmp_path / 'mine'} was not written by `datakit export` "
                        "(it has no .datakit-export marker), so --overwrite leaves it alone. "
                        "Move its files away, or pass another --out.\n")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"


def test_overwrite_replaces_an_earlier_export_but_not_files_added_to_it(make_manifest, tmp_path):
    m = make_manifest({"0": 3, "1": 3})
    out = tmp_path / "tree"
    assert _export(m.path, "--format", "imagefolder", "--out", out).exit_code == 0
    assert (out / ".datakit-export").is_file()
    r = _export(m.path, "--format", "hf", "--out", out, "--overwrite")  # control: replaced
    assert r.exit_code == 0, r.output
    assert (out / "dataset_dict.json").is_file() and not (out / "classes.json").exists()
    (out / "notes.txt").write_text("mine")
    r = _export(m.path, "--format", "hf", "--out", out, "--overwrite")
    assert r.exit_code == 1
    assert r.output == (f"Error: --out {out} holds files that `datakit export` did not write "
                        "(notes.txt), so --overwrite leaves it alone. Move them away, or pass "
                        "another --out.\n")
    assert (out / "notes.txt").read_text() == "mine"


# -- imagefolder names: one folder per class, names any file system takes ------------------

@pytest.mark.parametrize("classes", [["A", "a", "upper_A"], ["upper_A", "a", "A"],
                                     ["Ab", "aB", "Ab_1", "Ab_2", "aB_2"]])
def test_every_class_gets_its_own_folder(classes):
    names = class_folder_names(classes)
    assert len({n.casefold() for n in names.values()}) == len(classes)


def test_a_class_named_like_a_renamed_one_keeps_its_images_apart(make_manifest, tmp_path):
    m = make_manifest({"A": 2, "a": 2, "upper_A": 3})
    export(m, tmp_path / "tree", "imagefolder")
    mapping = json.loads((tmp_path / "tree" / "classes.json").read_text())
    assert mapping["folders"] == ["upper_A_2", "lower_a", "upper_A"]
    counts = {d.name: len(list(d.iterdir())) for d in (tmp_path / "tree" / "train").iterdir()}
    assert counts == {"upper_A_2": 2, "lower_a": 2, "upper_A": 3}


def test_long_class_and_file_names_export(make_manifest, tmp_path):
    long_class = "c" * 250
    m = make_manifest({long_class: 2, "b": 2}, name="n" * 90)
    t = m.table  # ids like "folder/root/<class>/<file>.png", as a folder ingest writes them
    t["id"] = [f"folder/root/{c}/{'f' * 250}{i}.png" for i, c in enumerate(t["class_name"])]
    export(m, tmp_path / "tree", "imagefolder")
    files = sorted((tmp_path / "tree" / "train").rglob("*.png"))
    assert len(files) == 4
    assert all(len(f.name.encode()) <= 255 and len(f.parent.name.encode()) <= 255 for f in files)
    assert not any(f.name.endswith(".png.png") for f in files)
    assert len({f.parent.name for f in files}) == 2
