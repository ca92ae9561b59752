"""compose: every operation on small generated manifests, exact counts; provenance; errors; CLI."""
import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import progress_lines

from datakit.cli import main
from datakit.composition.build import compose, rebuild
from datakit.composition.config import ComposeConfig
from datakit.errors import ChecksumMismatch, CompositionError
from datakit.manifest.read import read_manifest
from datakit.manifest.write import write_manifest
from datakit.sources.common import build_table

TEN = {str(d): 40 for d in range(10)}


@pytest.fixture
def hand(make_manifest):
    return make_manifest({"0": 20, "1": 20, "2": 20, "3": 20}, name="hand", size=8, channels=1,
                         domain="handwritten", subset="Hnd", dataset="toyhand")


@pytest.fixture
def fnt(make_manifest):
    return make_manifest({"0": 30, "1": 30, "2": 30, "A": 30}, name="fnt", size=16, channels=3,
                         domain="synthetic", subset="Fnt", dataset="toyfnt", seed=1)


def dup_manifest(path, copies):
    """A manifest whose image i appears copies[i] times, alternating classes 0/1, split train."""
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (len(copies), 8, 8, 1), dtype=np.uint8)
    idx = np.repeat(np.arange(len(copies)), copies)
    images = base[idx]
    records = [{"id": f"d/{k}", "dataset": "dup", "subset": "dup", "split": "train", "domain": "wild",
                "label": int(i % 2), "class_name": str(i % 2), "source": f"gen:{i}",
                "orig_width": 8, "orig_height": 8, "orig_mode": "L"} for k, i in enumerate(idx)]
    return write_manifest(path, build_table(records, images), images, {"command": "test"})


def counts(m):
    return m.table["class_name"].value_counts().to_dict()


# --- select -------------------------------------------------------------------------------
def test_select_classes_domain_and_drop(tmp_path, hand, fnt):
    m = compose([hand, fnt], tmp_path / "o.parquet", classes="digits")
    assert counts(m) == {"0": 50, "1": 50, "2": 50, "3": 20}
    m = compose([hand, fnt], tmp_path / "o.parquet", domain="synthetic", drop_classes="A,2")
    assert counts(m) == {"0": 30, "1": 30}
    assert set(m.table["domain"]) == {"synthetic"}
    assert m.vocabulary == ["0", "1"] and m.table.groupby("class_name")["label"].first().to_dict() == {"0": 0, "1": 1}
    m = compose([hand], tmp_path / "o.parquet", classes="0,3")
    assert counts(m) == {"0": 20, "3": 20}


def test_select_errors_say_what_is_available(tmp_path, hand, fnt):
    with pytest.raises(CompositionError) as e:
        compose([hand], tmp_path / "o.parquet", classes="0,Z")
    assert str(e.value) == "No images of class Z in hand.parquet; available: 0=20, 1=20, 2=20, 3=20."
    with pytest.raises(CompositionError, match=r"^No images with domain 'wild' in hand\.parquet, fnt\.parquet; available: handwritten, synthetic\.$"):
        compose([hand, fnt], tmp_path / "o.parquet", domain="wild")
    with pytest.raises(CompositionError) as e:
        compose([hand, fnt], tmp_path / "o.parquet", classes="3,A")
    assert str(e.value) == ("hand.parquet, fnt.parquet share no class, so there is nothing to mix (hand: 3; fnt: A). "
                            "Select overlapping classes with --classes.")
    with pytest.raises(CompositionError, match="The selection leaves no images"):
        compose([hand], tmp_path / "o.parquet", drop_classes="0,1,2,3")
    assert not (tmp_path / "o.parquet").exists()


# --- mix and geometry ---------------------------------------------------------------------
def test_mix_harmonises_geometry_and_keeps_provenance_columns(tmp_path, hand, fnt):
    m = compose([hand, fnt], tmp_path / "mix.parquet")
    assert len(m) == 200 and m.geometry.shape == (16, 16, 3)
    assert m.vocabulary == ["0", "1", "2", "3", "A"]
    assert m.table.groupby("dataset")["domain"].first().to_dict() == {"toyfnt": "synthetic", "toyhand": "handwritten"}
    assert m.table["parent"].value_counts().to_dict() == {"fnt": 120, "hand": 80}
    # grey 8x8 parents are upscaled and repeated over three identical channels
    hand_rows = m.table.index[m.table["parent"] == "hand"]
    px = np.asarray(m.pixels[hand_rows])
    assert np.array_equal(px[..., 0], px[..., 1]) and np.array_equal(px[..., 1], px[..., 2])
    # the synthetic parent's pixels are copied untouched (same geometry)
    fnt_rows = m.table.index[m.table["parent"] == "fnt"].to_numpy()
    assert np.array_equal(np.asarray(m.pixels[fnt_rows]), np.asarray(fnt.pixels))
    small = compose([hand, fnt], tmp_path / "small.parquet", image_size=8, channels=1)
    assert small.geometry.shape == (8, 8, 1)


def test_fraction_sets_the_share_of_a_domain(tmp_path, hand, fnt):
    m = compose([hand, fnt], tmp_path / "o.parquet", classes="0,1,2", fraction="domain=synthetic:0.3")
    n = len(m)
    syn = int((m.table["domain"] == "synthetic").sum())
    # 60 handwritten images limit the total: 60 / 0.7 = 85.7 -> 26 synthetic
    assert (n - syn, syn) == (60, 26)
    assert abs(syn / n - 0.3) <= 1 / n
    by = m.table[m.table["domain"] == "synthetic"]["class_name"].value_counts().to_dict()
    assert sorted(by.values()) == [8, 9, 9]  # stratified by class within the part


def test_fraction_needs_something_to_fill_the_rest(tmp_path, fnt):
    with pytest.raises(CompositionError) as e:
        compose([fnt], tmp_path / "o.parquet", fraction="domain=synthetic:0.3")
    assert str(e.value) == ("--fraction asks for synthetic 30% of domain, but the selection holds nothing "
                            "else to make up the other 70%; available domain values: synthetic.")


def test_weights_by_parent_name(tmp_path, hand, fnt):
    m = compose([hand, fnt], tmp_path / "o.parquet", classes="digits", weights="hand=1,fnt=1")
    assert m.table["parent"].value_counts().to_dict() == {"fnt": 80, "hand": 80}
    with pytest.raises(CompositionError, match=r"--weights names 'x'.*parents: fnt, hand"):
        compose([hand, fnt], tmp_path / "o.parquet", weights="x=1")


# --- skew -----------------------------------------------------------------------------------
def test_skew_step_halves_the_classes(tmp_path, make_manifest):
    m = compose([make_manifest(TEN)], tmp_path / "o.parquet", skew="step:0.1")
    assert counts(m) == {**{str(d): 40 for d in range(5)}, **{str(d): 4 for d in range(5, 10)}}


def test_skew_zipf_and_max_per_class(tmp_path, make_manifest):
    src = make_manifest({"a": 60, "b": 60, "c": 60, "d": 60})
    m = compose([src], tmp_path / "o.parquet", skew="zipf:1")
    assert counts(m) == {"a": 60, "b": 30, "c": 20, "d": 15}
    m = compose([src], tmp_path / "o.parquet", skew="zipf:1", max_per_class=25)
    assert counts(m) == {"a": 25, "b": 25, "c": 20, "d": 15}


def test_class_counts_exact_and_impossible(tmp_path, make_manifest):
    src = make_manifest({"0": 10, "1": 10, "2": 10})
    m = compose([src], tmp_path / "o.parquet", class_counts="0=7,1=2")
    assert counts(m) == {"0": 7, "1": 2, "2": 10}
    with pytest.raises(CompositionError) as e:
        compose([src], tmp_path / "o.parquet", class_counts="0=11")
    assert str(e.value) == ("--class-counts asks for 11 images of class '0' but only 10 exist; "
                            "available: 0=10, 1=10, 2=10.")


def test_skew_keeps_mix_shares_within_each_class(tmp_path, hand, fnt):
    m = compose([hand, fnt], tmp_path / "o.parquet", classes="0,1", weights="hand=1,fnt=1",
                class_counts="0=10,1=4")
    t = m.table
    assert counts(m) == {"0": 10, "1": 4}
    assert t[t["class_name"] == "0"]["parent"].value_counts().to_dict() == {"fnt": 5, "hand": 5}
    assert t[t["class_name"] == "1"]["parent"].value_counts().to_dict() == {"fnt": 2, "hand": 2}


# --- subsample, dedupe, split ------------------------------------------------------------------
def test_subsample_is_stratified(tmp_path, make_manifest):
    src = make_manifest({"0": 40, "1": 20})
    assert counts(compose([src], tmp_path / "o.parquet", size=30)) == {"0": 20, "1": 10}
    assert len(compose([src], tmp_path / "o.parquet", size=30, stratify=False)) == 30
    with pytest.raises(CompositionError, match=r"^--size 61 asks for more images than the 60 available"):
        compose([src], tmp_path / "o.parquet", size=61)


def test_dedupe_exact(tmp_path):
    src = dup_manifest(tmp_path / "dup.parquet", [3, 1, 2, 1, 1, 1])
    m = compose([src], tmp_path / "o.parquet", dedupe="exact")
    assert len(m) == 6 and m.stats["exact_duplicates"]["groups"] == 0
    assert m.meta["operations"][1] == {"op": "dedupe", "method": "exact", "dropped": 3, "rows": 6}


def test_dedupe_near_and_holdout_keep_near_copies_together(tmp_path):
    low = np.random.default_rng(5).integers(40, 200, (12, 4, 4), dtype=np.uint8)
    base = np.kron(low, np.ones((4, 4), dtype=np.uint8))[..., None]  # distinct, structured 16x16
    images = np.concatenate([base, base[:4] + np.uint8(6)])  # 4 brighter copies: near duplicates
    records = [{"id": f"n/{i}", "dataset": "n", "subset": "n", "split": "train", "domain": "wild",
                "label": 0, "class_name": "0", "source": "gen", "orig_width": 16, "orig_height": 16,
                "orig_mode": "L"} for i in range(16)]
    src = write_manifest(tmp_path / "n.parquet", build_table(records, images), images, {"command": "t"})
    assert src.stats["near_duplicates"]["groups"] == 4
    assert len(compose([src], tmp_path / "e.parquet", dedupe="exact")) == 16
    m = compose([src], tmp_path / "d.parquet", dedupe="near")
    assert sorted(m.table["id"]) == sorted(f"n/{i}" for i in range(12))
    for seed in range(5):
        m = compose([src], tmp_path / "h.parquet", holdout=0.5, seed=seed)
        split = m.table.set_index("id")["split"]
        assert all(split[f"n/{i}"] == split[f"n/{i + 12}"] for i in range(4))
        assert m.stats["leakage"]["near"]["groups"] == 0


def test_holdout_is_stratified_and_leakage_free(tmp_path, make_manifest):
    src = make_manifest({"0": 50, "1": 30})
    m = compose([src], tmp_path / "o.parquet", holdout=0.2)
    by = m.table.groupby(["class_name", "split"]).size().to_dict()
    assert by == {("0", "test"): 10, ("0", "train"): 40, ("1", "test"): 6, ("1", "train"): 24}
    dup = dup_manifest(tmp_path / "dup.parquet", [5, 4, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    m = compose([dup], tmp_path / "o2.parquet", holdout=0.3, seed=4)
    splits_per_image = m.table.groupby("sha256")["split"].nunique()
    assert splits_per_image.max() == 1
    assert m.stats["leakage"]["exact"]["groups"] == 0
    assert set(m.table["split"]) == {"train", "test"}


# --- provenance, determinism -------------------------------------------------------------------
def test_sidecar_records_parents_operations_seed_and_stats(tmp_path, hand, fnt):
    m = compose([hand, fnt], tmp_path / "o.parquet", classes="digits", skew="step:0.5", holdout=0.25, seed=7)
    meta = json.loads(m.sidecar_path.read_text())
    assert [p["checksum"] for p in meta["parents"]] == [hand.checksum, fnt.checksum]
    assert meta["parents"][0]["path"] == str(hand.path.resolve())
    assert [o["op"] for o in meta["operations"]] == ["select", "vocabulary", "skew", "split", "geometry"]
    assert meta["seed"] == 7 and meta["config"]["skew"] == {"kind": "step", "param": 0.5}
    assert meta["stats"]["class_counts"] == counts(m) | {c: 0 for c in m.vocabulary if c not in counts(m)}
    assert ComposeConfig.from_dict(meta["config"]) == ComposeConfig(classes="digits", skew="step:0.5",
                                                                     holdout=0.25, seed=7)


def test_deterministic_for_a_seed(tmp_path, make_manifest):
    src = make_manifest(TEN)
    a = compose([src], tmp_path / "a.parquet", size=100, holdout=0.2, seed=3)
    b = compose([src], tmp_path / "b.parquet", size=100, holdout=0.2, seed=3)
    c = compose([src], tmp_path / "c.parquet", size=100, holdout=0.2, seed=4)
    assert a.checksum == b.checksum
    assert a.checksum != c.checksum


def test_rebuild_is_bit_identical_and_checks_parents(tmp_path, hand, fnt):
    m = compose([hand, fnt], tmp_path / "o.parquet", classes="digits", fraction="domain=synthetic:0.5",
                image_size=12, polarity="dark-on-light", size=60, holdout=0.2, seed=11)
    r = rebuild(m.path, tmp_path / "again.parquet")
    assert np.array_equal(np.asarray(r.pixels), np.asarray(m.pixels))
    assert r.table.drop(columns=[]).equals(read_manifest(m.path).table)
    assert r.checksum == m.checksum
    # a parent that changed is refused
    write_manifest(hand.path, hand.table.iloc[:10], np.asarray(hand.pixels), {"command": "changed"},
                   classes=hand.vocabulary)
    with pytest.raises(ChecksumMismatch, match=r"^Parent .*hand\.parquet has checksum .* but o\.json recorded"):
        rebuild(m.path, tmp_path / "again2.parquet")
    with pytest.raises(CompositionError, match="was not written by compose"):
        rebuild(fnt.path, tmp_path / "x.parquet")


def test_polarity_flips_light_backgrounds(tmp_path):
    images = np.full((4, 8, 8, 1), 230, dtype=np.uint8)
    images[:, 2:6, 3:5] = 20  # dark ink on a light background
    images[2:] = 255 - images[2:]  # two of them light-on-dark already
    records = [{"id": f"p/{i}", "dataset": "p", "subset": "p", "split": "train", "domain": "synthetic",
                "label": 0, "class_name": "0", "source": "gen", "orig_width": 8, "orig_height": 8,
                "orig_mode": "L"} for i in range(4)]
    src = write_manifest(tmp_path / "p.parquet", build_table(records, images), images, {"command": "t"})
    m = compose([src], tmp_path / "o.parquet", polarity="light-on-dark")
    px = np.asarray(m.pixels)
    assert (px[:, 0, 0, 0] == 25).all() and (px[:, 3, 3, 0] == 235).all()


# --- CLI ---------------------------------------------------------------------------------------
def test_cli_compose_and_errors(tmp_path, hand, fnt):
    runner = CliRunner()
    out = tmp_path / "cli.parquet"
    r = runner.invoke(main, ["compose", str(hand.path), str(fnt.path), "-o", str(out), "--classes", "digits",
                             "--skew", "step:0.5", "--channels", "1", "--seed", "2"])
    assert r.exit_code == 0, r.output
    assert f"Wrote {out} (" in r.output and "16x16x1" in r.output
    assert read_manifest(out).meta["config"]["channels"] == 1
    r = runner.invoke(main, ["compose", str(hand.path), "-o", str(out), "--skew", "pareto:2"])
    assert r.exit_code == 1
    assert r.output == ("Error: Cannot read --skew 'pareto:2': use zipf:A (A > 0, class k gets k^-A of "
                        "the first) or step:F (0 < F <= 1, the second half of the classes at F times the "
                        "first half).\n")
    r = runner.invoke(main, ["compose", str(hand.path), "-o", str(out), "--class-counts", "0=21"])
    assert r.exit_code == 1
    assert r.output == ("Error: --class-counts asks for 21 images of class '0' but only 20 exist; "
                        "available: 0=20, 1=20, 2=20, 3=20.\n")
    r = runner.invoke(main, ["compose", str(hand.path), "-o", str(out), "--fraction", "synthetic=0.3"])
    assert r.exit_code == 1
    assert r.output == ("Error: Cannot read --fraction 'synthetic=0.3': write it as COLUMN=VALUE:SHARE "
                        "(e.g. domain=synthetic:0.3); COLUMN is one of subset, dataset, domain.\n")


def test_cli_rebuild(tmp_path, hand, fnt):
    m = compose([hand, fnt], tmp_path / "o.parquet", classes="digits", size=40, seed=5)
    runner = CliRunner()
    r = runner.invoke(main, ["rebuild", str(m.path), "-o", str(tmp_path / "r.parquet")])
    assert r.exit_code == 0, r.output
    assert r.output == f"Wrote {tmp_path / 'r.parquet'} (40 images), content identical to {m.path}\n"
    r = runner.invoke(main, ["rebuild", str(m.path), "-o", str(tmp_path / "r2.parquet"), "--parent", str(fnt.path)])
    assert r.exit_code == 1
    assert r.output == (f"Error: {m.path} records 2 parents but 1 parent path(s) were given; "
                        "pass one per parent, in the recorded order.\n")


def test_output_must_not_overwrite_a_parent_or_be_unwritable(tmp_path, hand):
    runner = CliRunner()
    r = runner.invoke(main, ["compose", str(hand.path), "-o", str(hand.path), "--size", "4"])
    assert r.exit_code == 1
    assert r.output == (f"Error: The output {hand.path} is the parent manifest hand.parquet; manifests are "
                        "immutable, so write the composition to a new path with -o.\n")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = runner.invoke(main, ["compose", str(hand.path), "-o", str(blocker / "x.parquet")])
    assert r.exit_code == 1
    assert r.output.startswith(f"Error: Cannot write the composed manifest {blocker / 'x.parquet'} (")
    assert r.output.endswith("); choose a writable path with -o.\n")


def test_resize_keeps_the_aspect_ratio_by_padding(tmp_path, hand):
    images = np.full((3, 8, 16, 1), 200, dtype=np.uint8)  # wide images, light background
    images[:, 3:5, 4:12] = 10
    records = [{"id": f"w/{i}", "dataset": "w", "subset": "w", "split": "train", "domain": "synthetic",
                "label": 0, "class_name": "0", "source": "gen", "orig_width": 16, "orig_height": 8,
                "orig_mode": "L"} for i in range(3)]
    wide = write_manifest(tmp_path / "wide.parquet", build_table(records, images), images, {"command": "t"})
    m = compose([wide], tmp_path / "o.parquet", image_size=32)
    px = np.asarray(m.pixels)[..., 0]
    assert m.geometry.shape == (32, 32, 1)
    assert (px[:, :8] == 200).all() and (px[:, 24:] == 200).all()  # padded above and below
    assert (px[:, 15:17, 10:22] == 10).all()  # the stroke, scaled 2x, in the middle (edges blend)


def test_compose_off_a_terminal_logs_the_images_it_writes(tmp_path, make_manifest, off_terminal, caplog):
    m = make_manifest({"0": 30, "1": 30})
    off_terminal.tick = 30  # each clock reading 30 s later
    compose([m], tmp_path / "c.parquet", size=40, seed=0)
    assert progress_lines(caplog, "writing pixels") == [
        "writing pixels: 40/40 (100%), 1.3 img/s, 0:30 elapsed, ETA 0:00",
        "writing pixels: 40/40 done in 1:00, 1.5 s/img"]
