"""A study's target domain: what realism is measured against (datakit.study.target), on tiny
generated manifests and fake runs (nothing is trained)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from datakit.composition.build import compose
from datakit.errors import StudyError
from datakit.study.arms import prepare_manifests
from datakit.study.spec import load_study, parse_study
from datakit.study.target import TOLERANCE, generated_share, mix_findings, wilson
from fake_runs import fake_audit, written_study


def _mixed(make_manifest, tmp_path, wild=6, synthetic=30):
    """A reference of natural-scene (wild) and font (synthetic) images, 20% of each held out."""
    parts = [make_manifest({"0": n, "1": n}, name=f"{d}_{s}", domain=d, split=s, seed=i,
                           subset="GoodImg" if d == "wild" else "Fnt")
             for i, (d, n0) in enumerate((("wild", wild), ("synthetic", synthetic)))
             for s, n in (("train", n0), ("test", max(1, n0 // 4)))]
    return compose(parts, tmp_path / "goodimg_fnt.parquet")


def test_target_parses_as_a_domain_or_a_mix(tmp_path):
    base = {"ingest": {"d": {"source": "digits"}}, "arm": [{"name": "a", "from": ["d"]}]}
    assert parse_study({**base, "compare": {"target": "wild"}}).target == {"wild": 1.0}
    mix = parse_study({**base, "compare": {"target": {"wild": 0.5, "synthetic": 0.5}}})
    assert mix.target == {"wild": 0.5, "synthetic": 0.5}
    assert parse_study(base).target is None
    with pytest.raises(StudyError) as e:
        parse_study({**base, "compare": {"target": "natural"}})
    assert str(e.value) == ("the study [compare]: target names unknown domain(s) natural; use "
                            "wild, synthetic, handwritten.")
    with pytest.raises(StudyError) as e:
        parse_study({**base, "compare": {"target": {"wild": 0.5}}})
    assert str(e.value).startswith("the study [compare]: target shares must lie in 0..1 and sum "
                                   "to 1, e.g. target = \"wild\"")


def test_the_chars74k_study_measures_against_natural_scene_crops(monkeypatch):
    monkeypatch.setenv("DATAKIT_DATA", "/data")
    path = os.path.join(os.path.dirname(__file__), "..", "audits", "chars74k_composition.toml")
    study = load_study(path)
    assert study.target == {"wild": 1.0} and study.reference == "goodimg_fnt"


def test_a_reference_mix_far_from_the_target_is_a_warning():
    # Planted (the committed chars74k page): 94.4% font renderings, 5.6% natural-scene crops,
    # for a question about natural-scene realism.
    measured = {"synthetic": 0.944, "wild": 0.056}
    (w,) = mix_findings({"wild": 1.0}, measured, ["wild", "synthetic"])
    assert (w["check"], w["severity"]) == ("target", "warn")
    assert w["sentence"] == ("The reference's held-out real images are 94.4% synthetic, 5.6% wild, "
                             "but the study's target is 100.0% wild: their wild share is 5.6% "
                             "against the target's 100.0% (94.4 points apart, more than 5), so "
                             "every distance partly measures the reference's mix rather than the "
                             "target.")
    # within the tolerance: no warning; a single-domain target met exactly: none either
    assert mix_findings({"wild": 0.5, "synthetic": 0.5},
                        {"wild": 0.5 + TOLERANCE - 0.01, "synthetic": 0.5 - TOLERANCE + 0.01},
                        ["wild", "synthetic"]) == []
    assert mix_findings({"wild": 1.0}, {"wild": 1.0}, ["wild", "synthetic"]) == []
    # no target: a warning only when the arms span several domains
    (none,) = mix_findings(None, measured, ["wild", "synthetic", "synthetic"])
    assert "names no target domain" in none["sentence"] and "94.4% synthetic" in none["sentence"]
    assert mix_findings(None, {"handwritten": 1.0}, ["handwritten"]) == []


def test_reference_views_are_the_target_domain_first_then_the_others(tmp_path, make_manifest):
    ref = _mixed(make_manifest, tmp_path)
    study = parse_study({"arm": [{"name": "goodimg_fnt", "manifest": str(ref.path)}],
                         "compare": {"target": "wild"}})
    manifests, reference = prepare_manifests(study, tmp_path / "manifests")
    assert [(v.name, v.primary) for v in reference.views] == [("wild", True), ("synthetic", False)]
    from datakit.manifest.read import read_manifest
    wild = read_manifest(reference.measured)
    assert set(wild.table["domain"]) == {"wild"}
    assert set(wild.table["split"]) == {"train", "test"}  # the reference's own hold-out kept
    assert reference.path == ref.path  # the judge is still trained on both domains
    # a target the reference lacks is refused with what it has
    bad = parse_study({"arm": [{"name": "r", "manifest": str(ref.path)}],
                       "compare": {"target": "handwritten"}})
    with pytest.raises(StudyError, match=r"has no handwritten images \(its domains: synthetic, "
                                         r"wild\)"):
        prepare_manifests(bad, tmp_path / "manifests")


def test_generated_share_reads_the_domain_head_with_a_bounded_interval(make_manifest):
    m = make_manifest({"0": 5, "1": 5})
    domains = {"basis": "judge predictions", "generated_count": 40, "rows": [
        {"name": "synthetic", "code": 0, "train_share": 0.9, "generated_share": 0.975},
        {"name": "wild", "code": 1, "train_share": 0.1, "generated_share": 0.025}]}
    share = generated_share(fake_audit(m, domains=domains), "wild")
    assert share["value"] == 0.025 and share["floor"] == 0.1 and share["sample_size"] == 40
    assert 0 <= share["ci_low"] < 0.025 < share["ci_high"] < 0.2
    assert generated_share(fake_audit(m), "wild") is None  # no domain reading
    assert wilson(1.0, 3)[1] == 1.0 and wilson(0.0, 3)[0] == 0.0


def test_a_target_study_reports_both_views_and_the_generated_share(tmp_path, make_manifest):
    ref = _mixed(make_manifest, tmp_path)
    fnt = make_manifest({"0": 20, "1": 20}, name="fnt", domain="synthetic", seed=9)
    study = parse_study({"study": {"name": "t", "seeds": [0, 1, 2]},
                         "arm": [{"name": "goodimg_fnt", "manifest": str(ref.path)},
                                 {"name": "fnt", "manifest": str(fnt.path)}],
                         "compare": {"reference": "goodimg_fnt", "target": "wild",
                                     "contrasts": [["goodimg_fnt", "fnt"]]}})
    manifests, reference = prepare_manifests(study, tmp_path / "manifests")

    def audit_for(arm, seed, m):
        wild = 0.3 if arm == "goodimg_fnt" else 0.02 + 0.01 * seed
        domains = {"basis": "judge predictions", "generated_count": 200, "parts": [], "rows": [
            {"name": "synthetic", "code": 0, "train_share": 0.9, "generated_share": 1 - wild},
            {"name": "wild", "code": 1, "train_share": 0.1, "generated_share": wild}]}
        return fake_audit(m, fd=30.0 + seed, domains=domains)

    def views_for(arm, seed, m):
        return {"synthetic": fake_audit(m, fd=5.0 + seed)}
    report, path = written_study(tmp_path, study, manifests, reference, audit_for,
                                 views_for=views_for)
    data = json.loads(path.read_text())
    r = data["reference"]
    assert r["target"] == {"wild": 1.0} and r["domain_mix"] == {"wild": 1.0}
    assert r["manifest"].startswith("manifests/goodimg_fnt-wild-")
    assert r["judge_manifest"] == os.path.relpath(ref.path, tmp_path)
    assert [(v["domain"], v["primary"]) for v in r["views"]] == [("wild", True), ("synthetic", False)]
    assert not [f for f in data["findings"] if f["check"] == "target"]  # measured = target
    fnt_arm = next(a for a in data["arms"] if a["arm"] == "fnt")
    assert fnt_arm["metrics"]["generated_wild_share"]["mean"] == pytest.approx(0.03)
    assert fnt_arm["views"]["synthetic"]["fd"]["mean"] == pytest.approx(6.0)
    share = next(c for c in data["contrasts"] if c["metric"] == "generated_wild_share")
    assert share["difference"] == pytest.approx(-0.27) and share["conclusive"]
    assert "fnt is worse than goodimg_fnt (conclusive)" in share["sentence"]
    assert share["sentence"].startswith("generated wild share, fnt vs goodimg_fnt: ")  # words
    html = report.read_text()
    assert "The same arms against the synthetic images (the other-domain view)" in html
    assert "generated wild share" in html


def test_without_a_target_a_mixed_study_is_warned(tmp_path, make_manifest):
    ref = _mixed(make_manifest, tmp_path)
    wild = make_manifest({"0": 6, "1": 6}, name="wild_only", domain="wild", seed=5)
    study = parse_study({"study": {"name": "t", "seeds": [0, 1]},
                         "arm": [{"name": "mixed", "manifest": str(ref.path)},
                                 {"name": "wild", "manifest": str(wild.path)}],
                         "compare": {"reference": "mixed"}})
    manifests, reference = prepare_manifests(study, tmp_path / "manifests")
    _, path = written_study(tmp_path, study, manifests, reference,
                            lambda a, s, m: fake_audit(m), seeds=(0, 1))
    warns = [f for f in json.loads(path.read_text())["findings"] if f["check"] == "target"]
    assert len(warns) == 1 and warns[0]["severity"] == "warn"
    # held out: 1 wild image per class and 7 font images per class
    assert "87.5% synthetic, 12.5% wild" in warns[0]["sentence"]


TARGET_STUDY = """
[study]
name = "target_toy"
seeds = [0, 1]

[train]
model = "acgan"
steps = 30
width = 8
batch_size = 16
n_generate = 10

[audit]
cas = false
bootstrap = 5
kid_subsets = 3
kid_subset_size = 50
judge = {{ epochs = 1, max_train_images = 300 }}

[[arm]]
name = "mixed"
manifest = "{mixed}"

[[arm]]
name = "scene"
manifest = "{scene}"

[compare]
reference = "mixed"
target = "wild"
contrasts = [["mixed", "scene"]]
"""


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_a_target_study_runs_end_to_end(digits_manifest, tmp_path):
    # Real (tiny) training and audits: the digits, the first half marked "wild" and the
    # second "synthetic" (a stand-in for GoodImg + Fnt); every run is audited against the
    # wild images, and once more against the synthetic ones, with one judge trained on both.
    from datakit.manifest.write import write_manifest
    from datakit.sources.common import build_table
    from datakit.study.runner import run_study
    t = digits_manifest.table.sort_values("row").iloc[:600].copy()
    pixels = np.asarray(digits_manifest.pixels)[t["row"].to_numpy()]
    t["domain"] = np.where(np.arange(len(t)) < 300, "wild", "synthetic")
    t["split"] = np.where(np.arange(len(t)) % 5 == 0, "test", "train")
    records = t.drop(columns=["sha256", "row"]).to_dict("records")
    mixed = write_manifest(tmp_path / "mixed.parquet", build_table(records, pixels), pixels,
                           {"command": "test: mixed"}, classes=digits_manifest.vocabulary)
    scene = write_manifest(tmp_path / "scene.parquet", build_table(records[:300], pixels[:300]),
                           pixels[:300], {"command": "test: wild"}, classes=digits_manifest.vocabulary)
    path = tmp_path / "target_toy.toml"
    path.write_text(TARGET_STUDY.format(mixed=mixed.path, scene=scene.path))
    result = run_study(load_study(path), out=tmp_path / "out", device="cpu", threads=1)
    data = json.loads(result.summary.read_text())
    assert data["reference"]["domain_mix"] == {"wild": 1.0}
    for run in result.runs.values():
        assert (run / "audit" / "views" / "synthetic" / "audit.json").exists()
    for r in data["runs"]:
        assert set(r["views"]) == {"synthetic"} and "fd" in r["views"]["synthetic"]
        share = r["summary"]["generated_wild_share"]
        assert 0 <= share["ci_low"] <= share["value"] <= share["ci_high"] <= 1
    audit = next(iter(result.audits.values()))
    assert audit.reference.checksum != mixed.checksum  # measured against the wild images only
    assert audit.judge["manifest_checksum"] == mixed.checksum  # by the judge of both
    assert any(c["metric"] == "generated_wild_share" for c in data["contrasts"]), [
        (c["metric"], c["a"], c["b"]) for c in data["contrasts"]]
