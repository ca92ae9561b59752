"""Audit studies: parsing and its errors, and a two-arm toy study run twice (reuse)."""
from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from datakit.cli import main
from datakit.errors import StudyError
from datakit.study.spec import tomllib
from datakit.study.arms import scaled_train_settings
from datakit.study.runner import run_study
from datakit.study.spec import load_study, parse_study

TOY = """
[study]
name = "toy"
title = "Toy: 100 vs 200 digits"
seeds = [0, 1]

[ingest.digits]
source = "digits"
size = 32

[train]
model = "acgan"
steps = 40
width = 8
batch_size = 16
n_generate = 8

[audit]
cas = false
bootstrap = 5
kid_subsets = 5
judge = { epochs = 1, max_train_images = 200 }

[[arm]]
name = "small"
from = ["digits"]
compose = { size = 120, holdout = 0.25, seed = 0 }

[[arm]]
name = "large"
from = ["digits"]
compose = { size = 240, holdout = 0.25, seed = 0 }

[compare]
factors = ["images"]
judge = "large"
factor = "images"
"""


def _write(tmp_path, text, name="study.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.slow
def test_two_arm_study_runs_and_then_reuses_everything(tmp_path):
    study = load_study(_write(tmp_path, TOY))
    out = tmp_path / "out"
    first = run_study(study, out=out, budget=0.1, device="cpu")
    assert list(first.runs) == ["small/seed0", "small/seed1", "large/seed0", "large/seed1"]
    assert first.runs["large/seed1"] == out / "runs" / "large" / "seed1"
    html = first.report.read_text()
    assert "Toy: 100 vs 200 digits" in html and "Contrasts: what changed between arms" in html
    assert str(tmp_path) not in html  # every path on the page is relative to the study folder
    cfg = json.loads((first.runs["small/seed1"] / "config.json").read_text())
    assert cfg["steps"] == 4 and cfg["steps_done"] == 4 and cfg["seed"] == 1  # 40 x budget 0.1
    assert cfg["plateaued"] is False
    from datakit.manifest.read import read_manifest
    assert read_manifest(cfg["manifest"]).stats["split_counts"] == {"test": 30, "train": 90}
    summary = json.loads(first.summary.read_text())
    assert str(tmp_path) not in first.summary.read_text()
    assert [(r["arm"], r["seed"], r["run_dir"]) for r in summary["runs"]] == [
        ("small", 0, "runs/small/seed0"), ("small", 1, "runs/small/seed1"),
        ("large", 0, "runs/large/seed0"), ("large", 1, "runs/large/seed1")]
    assert summary["executor"] == "local" and summary["file"] == "../study.toml"
    assert [a["arm"] for a in summary["arms"]] == ["small", "large"]
    assert summary["arms"][0]["metrics"]["fd"]["n_seeds"] == 2
    # [compare] judge = "large" names the reference: one judge for every run
    assert summary["reference"]["arm"] == "large"
    assert summary["reference"]["manifest"].startswith("manifests/large-")
    large_checksum = json.loads((first.runs["large/seed0"] / "config.json").read_text())["manifest_checksum"]
    assert {a.judge["manifest_checksum"] for a in first.audits.values()} == {large_checksum}
    # factor = "images": small -> large, one contrast per metric, over the two seeds
    c = {x["metric"]: x for x in summary["contrasts"]}
    assert set(c) >= {"fd", "label_fidelity", "coverage", "recall", "precision"}
    assert (c["fd"]["a"], c["fd"]["b"], c["fd"]["factor"], c["fd"]["n_seeds"]) == \
        ("small", "large", "images", 2)
    assert summary["verdict"]
    stamps = {p: p.stat().st_mtime_ns for r in first.runs.values()
              for p in (r / "generated.npz", r / "audit" / "audit.json")}

    # Again from the command line: it lists the runs, prints study.json's verdict, then the report.
    again = CliRunner().invoke(main, ["study", str(tmp_path / "study.toml"), "--out", str(out),
                                      "--budget", "0.1", "--device", "cpu"])
    assert again.exit_code == 0, again.output
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing retrained or re-audited
    assert again.stdout.splitlines() == (
        [f"  {arm}: {d}" for arm, d in first.runs.items()] + ["Verdict:"]
        + [f"  {sentence}" for sentence in summary["verdict"]] + [f"Report: {first.report}"])

    # A different budget changes the settings, so the finished run no longer matches.
    from datakit.study.arms import _resumable, _run_matches
    small = first.runs["small/seed0"]
    m = read_manifest(json.loads((small / "config.json").read_text())["manifest"])
    same = {**scaled_train_settings(study.train, {}, 0.1, "cpu"), "seed": 0}
    assert _run_matches(small, same, m)
    assert not _run_matches(small, scaled_train_settings(study.train, {}, 0.2, "cpu"), m)
    assert not _run_matches(small, {**same, "augment": "diffaugment"}, m)
    assert not _run_matches(small, {**same, "seed": 1}, m)

    # An interrupted run (checkpoint, no generated.npz) is resumed, not restarted.
    (small / "generated.npz").unlink()
    assert _resumable(small, same, m)
    rows_before = (small / "metrics.csv").read_text()
    run_study(load_study(tmp_path / "study.toml"), out=out, budget=0.1, device="cpu")
    assert (small / "generated.npz").exists()
    assert (small / "metrics.csv").read_text() == rows_before  # resumed at the last step


def test_budget_scales_steps_and_intervals():
    s = scaled_train_settings({"steps": 4000, "model": "acgan"}, {"augment": "diffaugment"}, 0.05, "cpu")
    assert s["steps"] == 200 and s["augment"] == "diffaugment" and s["device"] == "cpu"
    assert s["log_every"] == 4 and s["sample_every"] == 25
    with pytest.raises(StudyError, match="--budget must be positive, got 0"):
        scaled_train_settings({}, {}, 0, None)


def test_data_path_needs_datakit_data(tmp_path, monkeypatch):
    monkeypatch.delenv("DATAKIT_DATA", raising=False)
    p = _write(tmp_path, '[ingest.m]\nsource = "mnist"\npath = "${DATAKIT_DATA}/mnist"\n'
                         '[[arm]]\nname = "a"\nfrom = ["m"]\n')
    with pytest.raises(StudyError) as e:
        load_study(p)
    assert str(e.value) == (f"{p} [ingest.m] uses ${{DATAKIT_DATA}} but DATAKIT_DATA is not set. "
                            "Set it to the folder that holds the data (e.g. export "
                            "DATAKIT_DATA=../shared/data).")
    monkeypatch.setenv("DATAKIT_DATA", "/data")
    assert load_study(p).ingests["m"].path == "/data/mnist"


@pytest.mark.parametrize("text, message", [
    ('[[arm]]\nname = "a"\nfrom = ["nope"]\n',
     "arm 1 (a) uses ingest 'nope', which is not defined; defined: none."),
    ('[ingest.d]\nsource = "digits"\n[[arm]]\nname = "a"\nfrom = ["d"]\ncompose = { sise = 3 }\n',
     "arm 1 (a) compose: unknown key(s) sise; valid keys:"),
    ('[ingest.d]\nsource = "digits"\n[train]\nstepz = 3\n[[arm]]\nname = "a"\nfrom = ["d"]\n',
     "[train]: unknown key(s) stepz; valid keys:"),
    ('[ingest.d]\nsource = "nosuch"\n', "[ingest.d]: unknown source 'nosuch'; use one of"),
    ('[study]\nname = "x"\n', "names no arms; add [[arm]] tables"),
    ('[ingest.d]\nsource = "digits"\n[[arm]]\nname = "a b"\nfrom = ["d"]\n',
     "arm 1: The arm name 'a b' cannot name a file or folder: use letters, digits and _ . + = - (no path separators, no leading dot)."),
    ('[ingest.d]\nsource = "digits"\n[[arm]]\nname = "a"\n',
     "arm 1 (a) needs exactly one of `from` (ingest names) or `manifest` (a .parquet path)."),
    ('[ingest.d]\nsource = "digits"\n[[arm]]\nname = "a"\nfrom = ["d"]\n[compare]\njudge = "b"\n',
     "[compare]: judge = 'b' is not an arm; use one of: a."),
    ('[study]\nseeds = [0, 0]\n[ingest.d]\nsource = "digits"\n[[arm]]\nname = "a"\nfrom = ["d"]\n',
     "[study]: seeds must be a list of distinct integers from 0 to 4294967295, e.g. seeds = [0, 1, 2]; "
     "got [0, 0]."),
    ('[ingest.d]\nsource = "digits"\n[train]\nseed = 3\n[[arm]]\nname = "a"\nfrom = ["d"]\n',
     "[train]: `seed` is set by the study runner, not the study file (list seeds in [study] seeds)."),
    ('[ingest.d]\nsource = "digits"\n[[arm]]\nname = "a"\nfrom = ["d"]\n[compare]\nreference = "b"\n',
     "[compare]: reference = 'b' is neither an arm nor \"union\"; use one of: a, union."),
    ('[ingest.d]\nsource = "digits"\n[[arm]]\nname = "a"\nfrom = ["d"]\n[compare]\n'
     'contrasts = [["a", "a"]]\n', "[compare]: contrast ['a', 'a'] must be a pair of two different arms"),
    ('[ingest.d]\nsource = "digits"\n[[arm]]\nname = "a"\nfrom = ["d"]\n[compare]\nfactor = "size"\n',
     "[compare]: factor 'size' is not a factor of this study; use one of:"),
    ('[ingest.d]\nsource = "digits"\n[[sweep]]\nname = "s"\nfrom = ["d"]\nfactor = "sise"\n'
     'values = [1, 2]\n', "sweep 1 (s): factor 'sise' is neither a compose option nor a training setting"),
    ('[ingest.d]\nsource = "digits"\n[[sweep]]\nname = "s"\nfrom = ["d"]\nfactor = "size"\n'
     'values = [1]\n', "sweep 1 (s) needs `values`, a list of at least two levels of size"),
])
def test_bad_study_files_name_the_problem(tmp_path, text, message):
    with pytest.raises(StudyError) as e:
        load_study(_write(tmp_path, text))
    assert message in str(e.value)
    assert str(tmp_path / "study.toml") in str(e.value)


def test_shipped_studies_parse(monkeypatch):
    monkeypatch.setenv("DATAKIT_DATA", "/data")
    root = os.path.join(os.path.dirname(__file__), "..", "audits")
    arms = {name: [a.name for a in load_study(os.path.join(root, f"{name}.toml")).arms]
            for name in ("chars74k_composition", "mnist_size", "class_skew")}
    assert arms["chars74k_composition"] == ["goodimg", "goodimg_fnt", "fnt", "goodimg_diffaugment"]
    assert arms["mnist_size"] == ["mnist_500", "mnist_2000", "mnist_10000", "mnist_60000"]
    assert len(arms["class_skew"]) == 4
    for name in arms:
        study = load_study(os.path.join(root, f"{name}.toml"))
        assert study.seeds == [0, 1, 2] and (study.contrasts or study.contrast_factors)


def test_cli_study_errors(tmp_path):
    result = CliRunner().invoke(main, ["study", str(tmp_path / "none.toml")])
    assert result.exit_code == 1
    # pip installs no audits/ folder: the message points to the docs and the built-in demo
    assert result.output == (f"Error: Study file {tmp_path / 'none.toml'} not found. Pass the path "
                             "of a study file (TOML; its format is in the docs, docs/studies.md, "
                             "with examples in the source repository's audits/ folder), or run "
                             "`datakit demo` for the built-in study on embedded data.\n")
    bad = _write(tmp_path, "[study\n")
    result = CliRunner().invoke(main, ["study", str(bad)])
    assert result.exit_code == 1 and result.output.startswith(f"Error: Study file {bad} is not valid TOML")


def test_an_arm_that_cannot_be_composed_is_named_with_its_options(tmp_path, monkeypatch):
    """A sweep value larger than the data (size = 5000 of 1,797 digits) fails at its compose,
    and the error names the arm and the options the study file gave it, before any training."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATAKIT_DATA", str(tmp_path / "home"))
    text = TOY.replace("compose = { size = 240, holdout = 0.25, seed = 0 }",
                       "compose = { size = 5000, holdout = 0.25, seed = 0 }")
    result = CliRunner().invoke(main, ["study", str(_write(tmp_path, text)), "--out", "out"])
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: Arm large could not be composed from digits (size = 5000, "
                           "holdout = 0.25, seed = 0): --size 5000 asks for more images than the "
                           "1797 available")
    assert not (tmp_path / "out" / "runs").exists()


def test_overrides_parse_as_toml_values():
    from datakit.study.spec import parse_overrides
    assert parse_overrides(["width=16", "augment=diffaugment", "ema=true", "lr_g=1e-4"]) == {
        "width": 16, "augment": "diffaugment", "ema": True, "lr_g": 1e-4}
    with pytest.raises(StudyError, match=r"Bad --set 'width'; write KEY=VALUE"):
        parse_overrides(["width"])


def test_bad_overrides_are_refused_before_any_work(tmp_path):
    study = load_study(_write(tmp_path, TOY))
    with pytest.raises(StudyError, match=r"--set: unknown key\(s\) widht; valid keys:"):
        run_study(study, out=tmp_path / "o", overrides={"widht": 8})
    with pytest.raises(StudyError, match=r"--set audit.NAME: unknown key\(s\) kas; valid keys:"):
        run_study(study, out=tmp_path / "o", overrides={"audit.kas": False})
    assert not (tmp_path / "o").exists()


SWEEP = """
[study]
seeds = [0, 1, 2]
[ingest.d]
source = "digits"
[[sweep]]
name = "d"
from = ["d"]
factor = "size"
values = [100, 200, 400]
compose = { holdout = 0.2 }
train = { width = 8 }
[[arm]]
name = "wide"
from = ["d"]
train = { width = 16 }
[compare]
factor = "size"
contrasts = [["d_400", "wide"]]
reference = "union"
"""


def test_sweep_expands_into_arms_with_levels(tmp_path):
    study = load_study(_write(tmp_path, SWEEP))
    assert [a.name for a in study.arms] == ["wide", "d_100", "d_200", "d_400"]
    d200 = study.arms[2]
    assert d200.compose == {"holdout": 0.2, "size": 200} and d200.train == {"width": 8}
    assert d200.levels == {"sweep": "d", "factor": "size", "value": 200}
    assert study.seeds == [0, 1, 2] and study.reference == "union"
    assert study.contrasts == [("d_400", "wide")] and study.contrast_factors == ["size"]


def test_contrast_pairs_and_curve_rows():
    from datakit.study.results import contrast_pairs
    from datakit.study.sweep import curve_rows
    study = parse_study(tomllib.loads(SWEEP))
    arms = [{"arm": a.name, "levels": {"images": 100, **({"size": a.levels["value"]}
                                                          if a.levels else {})}}
            for a in study.arms]
    assert contrast_pairs(study, arms) == [("width", "d_400", "wide"), ("size", "d_100", "d_200"),
                                           ("size", "d_200", "d_400")]
    stats = {"fd": {"mean": 5.0, "ci_low": 4.0, "ci_high": 6.0, "n_seeds": 3}}
    rows = curve_rows({a.name: {"metrics": stats} for a in study.arms},
                      {a.name: a.levels for a in study.arms if a.levels})
    assert [(r["value"], r["metric"], r["n_seeds"]) for r in rows] == [
        (100, "fd", 3), (200, "fd", 3), (400, "fd", 3)]


def test_curve_csv_columns(tmp_path):
    from datakit.study.sweep import write_curve_csv
    p = write_curve_csv(tmp_path / "curve.csv", [
        {"sweep": "d", "factor": "size", "value": 100, "metric": "fd", "mean": 5.0,
         "ci_low": 4.0, "ci_high": 6.0, "n_seeds": 3, "class_group": None},
        {"sweep": "d", "factor": "size", "value": 100, "metric": "recall", "mean": 0.5,
         "ci_low": 0.4, "ci_high": 0.6, "n_seeds": 3, "class_group": "minority"}])
    assert p.read_text() == ("sweep,factor,value,metric,mean,ci_low,ci_high,n_seeds,class_group\n"
                             "d,size,100,fd,5.0,4.0,6.0,3,\n"
                             "d,size,100,recall,0.5,0.4,0.6,3,minority\n")


def test_reference_goes_to_the_audit_config(tmp_path):
    from datakit.study.runner import _audit_config
    cfg = _audit_config({"cas": False}, {}, "cpu", tmp_path / "ref.parquet")
    assert cfg.judge_manifest == str((tmp_path / "ref.parquet").resolve())
    # reference_manifest arrives with the audit rewrite; until then only the judge is shared
    assert getattr(cfg, "reference_manifest", cfg.judge_manifest) == cfg.judge_manifest


def test_minority_vs_majority_contrast_within_an_arm():
    from datakit.study.results import class_group_contrasts
    study = parse_study({"ingest": {"d": {"source": "digits"}},
                         "arm": [{"name": "skewed", "from": ["d"]}],
                         "compare": {"class_groups": {"majority": ["0", "1"],
                                                      "minority": ["2", "3"]}}})
    # Planted: minority classes' label fidelity is 0.4 below the majority's on every seed.
    runs = [{"arm": "skewed", "seed": s, "per_class": [
        {"class_name": "0", "label_fidelity": 0.9 + d}, {"class_name": "1", "label_fidelity": 0.92},
        {"class_name": "2", "label_fidelity": 0.5 + d}, {"class_name": "3", "label_fidelity": 0.52}]}
        for s, d in enumerate([0.0, 0.01, -0.01])]
    (c,) = class_group_contrasts(study, runs)
    assert (c["a"], c["b"], c["metric"], c["arm"]) == ("majority", "minority", "label_fidelity", "skewed")
    assert c["difference"] == pytest.approx(-0.4) and c["conclusive"]
    assert "minority is worse than majority (conclusive)" in c["sentence"]


def test_a_driver_without_a_gpu_leaves_a_cuda_audit_s_judge_to_the_workers(tmp_path, monkeypatch):
    # the judge cache key names the device type, so a judge trained on this CPU would never be
    # the one the workers' CUDA audits look up: none is trained here
    from types import SimpleNamespace

    import torch

    from datakit.study import arms
    trained = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(arms, "judge_for_manifest", lambda *a, **k: trained.append(a))
    reference = arms.Reference("union", tmp_path / "union.parquet", "0" * 64)
    arms.train_shared_judge(reference, SimpleNamespace(use_cache=True, device="cuda", judge=None), tmp_path)
    assert trained == []


def test_a_batch_left_at_auto_is_no_part_of_a_run_s_identity(tmp_path):
    # The study file's settings name the run; an auto batch or rate (absent, or 0) names no
    # value, so a run recorded at the GPU's batch 256 is still the study's run on a laptop.
    from types import SimpleNamespace

    from datakit.study.arms import _same_run
    from datakit.study.results import budget_record
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"manifest_checksum": "abc", "batch_size": 256,
                                                 "lr_g": 2e-3, "lr_d": 2e-3, "width": 8}))
    m = SimpleNamespace(checksum="abc")
    assert _same_run(run, {"width": 8}, m)
    assert _same_run(run, {"width": 8, "batch_size": 0, "lr_g": 0.0, "lr_d": 0.0}, m)
    assert _same_run(run, {"batch_size": 256, "lr_g": 2e-3}, m)
    assert not _same_run(run, {"batch_size": 64}, m)  # an explicit batch still counts
    assert not _same_run(run, {"lr_d": 1e-3}, m)
    # study.json's budget reads the batch the runs recorded, and says when they differ.
    study = parse_study({"study": {"name": "s", "seeds": [0, 1]},
                         "ingest": {"d": {"source": "digits"}}, "train": {"steps": 10},
                         "arm": [{"name": "a", "from": ["d"]}]})
    runs = [{"arm": "a", "seed": s, "steps_done": 10, "batch_size": 64} for s in (0, 1)]
    record = budget_record(study, runs, 1.0, {})
    assert record["batch_size"] == 64
    assert record["description"].startswith("10 steps of 64 images: 640 images seen per run")
    runs[1]["batch_size"] = 256
    record = budget_record(study, runs, 1.0, {})
    assert record["batch_size"] is None
    assert record["description"].startswith(
        "10 steps of 64 to 256 images: the batch differs between runs (batch_size is auto, "
        "and the runs were trained on different devices).")
