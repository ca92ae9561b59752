"""Audit studies: parsing and its errors, and a two-arm toy study run twice (reuse)."""
from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from datakit.cli import main
from datakit.errors import StudyError
from datakit.study import load_study, parse_study, run_study, scaled_train_settings

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
    assert list(first.runs) == ["small", "large"]
    html = first.report.read_text()
    assert "Toy: 100 vs 200 digits" in html and "Runs compared" in html
    cfg = json.loads((first.runs["small"] / "config.json").read_text())
    assert cfg["steps"] == 4  # 40 steps x budget 0.1
    from datakit.manifest import read_manifest
    assert read_manifest(cfg["manifest"]).stats["split_counts"] == {"test": 30, "train": 90}
    summary = json.loads(first.summary.read_text())
    assert [a["arm"] for a in summary["arms"]] == ["small", "large"]
    # [compare] judge = "large": one judge, trained on the large arm's manifest, measures both
    large_checksum = json.loads((first.runs["large"] / "config.json").read_text())["manifest_checksum"]
    assert {a["judge"]["manifest_checksum"] for a in first.audits.values()} == {large_checksum}
    stamps = {p: p.stat().st_mtime_ns for r in first.runs.values()
              for p in (r / "generated.npz", r / "audit" / "audit.json")}

    again = run_study(load_study(tmp_path / "study.toml"), out=out, budget=0.1, device="cpu")
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing retrained or re-audited
    assert again.report.exists()

    # A different budget changes the settings, so the finished run no longer matches.
    from datakit.manifest import read_manifest
    from datakit.study import _run_matches
    small = first.runs["small"]
    m = read_manifest(json.loads((small / "config.json").read_text())["manifest"])
    same = scaled_train_settings(study.train, {}, 0.1, "cpu")
    assert _run_matches(small, same, m)
    assert not _run_matches(small, scaled_train_settings(study.train, {}, 0.2, "cpu"), m)
    assert not _run_matches(small, {**same, "augment": "diffaugment"}, m)


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
     "arm 1 needs a `name` of letters, digits and _.+- (it names the run folder), got 'a b'."),
    ('[ingest.d]\nsource = "digits"\n[[arm]]\nname = "a"\n',
     "arm 1 (a) needs exactly one of `from` (ingest names) or `manifest` (a .parquet path)."),
    ('[ingest.d]\nsource = "digits"\n[[arm]]\nname = "a"\nfrom = ["d"]\n[compare]\njudge = "b"\n',
     "[compare]: judge = 'b' is not an arm; use one of: a."),
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
    assert arms["mnist_size"] == ["mnist_1k", "mnist_5k", "mnist_60k"]
    assert len(arms["class_skew"]) == 4


def test_cli_study_errors(tmp_path):
    result = CliRunner().invoke(main, ["study", str(tmp_path / "none.toml")])
    assert result.exit_code == 1
    assert result.output == (f"Error: Study file {tmp_path / 'none.toml'} not found. Pass one of the "
                             "files in audits/ (e.g. audits/mnist_size.toml).\n")
    bad = _write(tmp_path, "[study\n")
    result = CliRunner().invoke(main, ["study", str(bad)])
    assert result.exit_code == 1 and result.output.startswith(f"Error: Study file {bad} is not valid TOML")


def test_overrides_parse_as_toml_values():
    from datakit.study import parse_overrides
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
