"""Study files are checked completely before any work; run folders datakit did not make are never deleted."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from click.testing import CliRunner

from datakit.cli import main
from datakit.errors import StudyError
from datakit.study.arms import _remove_stale_run
from datakit.study.spec import load_study
from datakit.training.rundir import MARKER, RunDir

ARM = '[[arm]]\nname = "a"\nfrom = ["d"]\n'
DIGITS = '[ingest.d]\nsource = "digits"\n'


def _write(tmp_path, text):
    p = tmp_path / "study.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("text, message", [
    (DIGITS + '[[arm]]\nname = ".."\nfrom = ["d"]\n',
     "arm 1: The arm name '..' cannot name a file or folder"),
    (DIGITS + '[[arm]]\nname = "."\nfrom = ["d"]\n',
     "arm 1: The arm name '.' cannot name a file or folder"),
    ('[study]\nname = "../../X"\n' + DIGITS + ARM,
     "[study]: The study name '../../X' cannot name a file or folder"),
    ('[ingest."../../../Y"]\nsource = "digits"\n' + ARM.replace('"d"', '"../../../Y"'),
     "[ingest.../../../Y]: The ingest name '../../../Y' cannot name a file or folder"),
    (DIGITS + '[[arm]]\nname = "' + "a" * 101 + '"\nfrom = ["d"]\n',
     "The arm name is 101 characters long; use at most 100."),
    ('[ingest.d]\nsource = "digits"\nsise = 8\n' + ARM,
     "[ingest.d] (digits options): unknown key(s) sise; valid keys: size."),
    ('[ingest.d]\nsource = "digits"\nout = "/tmp/elsewhere"\n' + ARM,
     "[ingest.d]: `out` is set by the study runner"),
    ('[ingest.d]\nsource = "digits"\nsize = "big"\n' + ARM,
     "[ingest.d]: `size` must be an integer, got 'big'."),
    (DIGITS + '[train]\nsteps = -5\n' + ARM, "[train]: --steps must be at least 1, got -5."),
    (DIGITS + '[train]\nsteps = "many"\n' + ARM, "[train]: `steps` must be an integer, got 'many'."),
    (DIGITS + '[train]\nema = 3\n' + ARM, "[train]: `ema` must be true or false, got 3."),
    (DIGITS + '[train]\nlr_g = nan\n' + ARM, "[train]: `lr_g` must be a finite number, got nan."),
    (DIGITS + '[[arm]]\nname = "a"\nfrom = ["d"]\ntrain = { width = 0 }\n',
     "arm 1 (a): --width must be at least 1, got 0."),
    (DIGITS + '[[arm]]\nname = "a"\nfrom = "d"\n',
     "arm 1 (a): `from` must be a list of ingest names, got 'd'."),
    (DIGITS + '[[arm]]\nname = "a"\nfrom = ["d"]\ncompose = { size = "ten" }\n',
     "arm 1 (a) compose: `size` must be an integer, got 'ten'."),
    ('ingest = 3\n' + ARM, "[ingest] must be a table (key = value lines), got 3."),
    ('arm = 3\n' + DIGITS, "`arm` must be a list of [[arm]] tables."),
    # [audit] is checked when the file is read, not after ingest, compose and training
    (DIGITS + '[audit]\njudge = { epochs = -1 }\n' + ARM,
     "[audit]: The judge setting epochs must be a whole number of at least 0, got -1."),
    (DIGITS + '[audit]\njudge = { foo = 2 }\n' + ARM,
     "[audit]: Unknown judge setting(s) foo; valid settings: batch_size, device, epochs, "
     "feature_dim, held_out_share, lr, max_train_images, min_accuracy, seed, width."),
    (DIGITS + '[audit]\nk = 0\n' + ARM,
     "[audit]: The audit setting k must be a whole number of at least 1, got 0."),
    (DIGITS + '[audit]\nmax_generated = 0\n' + ARM,
     "[audit]: The audit setting max_generated must be a whole number of at least 2, got 0."),
    (DIGITS + '[audit]\ndevice = "gpu"\n' + ARM,
     "[audit]: The audit setting device must be auto, cpu or cuda[:N], got 'gpu'."),
    ('[study]\nseeds = [9223372036854775807]\n' + DIGITS + ARM,
     "[study]: seeds must be a list of distinct integers from 0 to 4294967295, e.g. seeds = "
     "[0, 1, 2]; got [9223372036854775807]."),
])
def test_study_file_is_checked_completely(tmp_path, text, message):
    with pytest.raises(StudyError) as e:
        load_study(_write(tmp_path, text))
    assert message in str(e.value)


def test_good_study_passes(tmp_path):  # control: the checks do not refuse a valid file
    s = load_study(_write(tmp_path, '[ingest.d]\nsource = "digits"\nsize = 16\n[train]\nsteps = 5\n'
                                    'lr_g = 1e-4\nema = true\n' + ARM))
    assert s.ingests["d"].options == {"size": 16} and s.train["ema"] is True


@pytest.mark.parametrize("budget", ["nan", "inf", "0", "-1"])
def test_budget_must_be_finite_and_positive(tmp_path, budget):
    p = _write(tmp_path, DIGITS + ARM)
    r = CliRunner().invoke(main, ["study", str(p), "--budget", budget, "-o", str(tmp_path / "out")])
    assert r.exit_code == 1
    assert r.output.startswith(f"Error: --budget must be positive, got {float(budget)}; give a "
                               "finite number such as 0.05.")
    assert not (tmp_path / "out").exists()  # refused before any work


def test_trainer_marks_its_run_folders(tmp_path):
    RunDir(tmp_path / "run").create()
    assert (tmp_path / "run" / MARKER).is_file()


def test_a_folder_datakit_did_not_make_is_never_deleted(tmp_path):
    run = tmp_path / "runs" / "a"
    run.mkdir(parents=True)
    (run / "notes.txt").write_text("mine")
    with pytest.raises(StudyError) as e:
        _remove_stale_run(run)
    assert str(e.value) == (f"{run} holds files that datakit did not write (no {MARKER} marker), "
                            "so it was left alone; move them away, or pass another --out.")
    assert (run / "notes.txt").read_text() == "mine"


def test_a_stale_datakit_run_is_replaced(tmp_path):
    run = tmp_path / "runs" / "a"
    RunDir(run).create()
    (run / "metrics.csv").write_text("step\n")
    _remove_stale_run(run)
    assert not run.exists()
    empty = tmp_path / "runs" / "b"
    empty.mkdir()
    _remove_stale_run(empty)  # an empty folder is left for the trainer to fill
    assert empty.exists()


def test_user_files_in_a_stale_datakit_run_are_moved_aside_with_a_warning(tmp_path,
                                                                         datakit_warnings):
    run = tmp_path / "runs" / "a" / "seed0"
    RunDir(run).create()
    (run / "config.json").write_text("{}")
    (run / ".config.json.tmp-999999").write_text("")  # a killed write's leftover: datakit's
    (run / "notes.txt").write_text("mine")
    (run / "my_plots").mkdir()
    (run / "my_plots" / "p.png").write_bytes(b"png")
    _remove_stale_run(run)
    kept = tmp_path / "runs" / "a" / "seed0.kept"
    assert (kept / "notes.txt").read_text() == "mine" and (kept / "my_plots" / "p.png").exists()
    assert sorted(p.name for p in kept.iterdir()) == ["my_plots", "notes.txt"]
    assert not run.exists()
    assert datakit_warnings == [f"[train] {run} holds files that datakit did not write (my_plots, "
                        f"notes.txt); they were moved to {kept} before the stale run was replaced."]
    RunDir(run).create()  # a second stale run with a user file: a new folder, nothing overwritten
    (run / "notes.txt").write_text("second")
    _remove_stale_run(run)
    assert (kept / "notes.txt").read_text() == "mine"
    assert (tmp_path / "runs" / "a" / "seed0.kept-2" / "notes.txt").read_text() == "second"


def test_deeply_nested_toml_is_one_line(tmp_path):
    p = _write(tmp_path, "a = " + "[" * 5000 + "]" * 5000 + "\n")
    r = CliRunner().invoke(main, ["study", str(p), "-o", str(tmp_path / "out")])
    assert r.exit_code == 1
    assert r.output == (f"Error: Study file {p} nests tables or arrays too deeply to read; a study "
                        "needs a few levels at most (see audits/*.toml).\n")


def test_a_gpu_that_is_not_there_is_refused_before_any_work(tmp_path, monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    p = _write(tmp_path, DIGITS + '[audit]\ndevice = "cuda"\n' + ARM)
    r = CliRunner().invoke(main, ["study", str(p), "-o", str(tmp_path / "out")])
    assert r.exit_code == 1
    assert r.output == (f"Error: {p}: [audit] device is 'cuda' but PyTorch sees no CUDA GPU on "
                        "this machine; use device = \"cpu\" or \"auto\" (or --device cpu), or run "
                        "the study where a GPU is.\n")
    assert not (tmp_path / "out").exists()  # no ingest, compose or training ran


def test_a_run_with_truncated_samples_is_trained_again(make_manifest, tmp_path, monkeypatch,
                                                       datakit_warnings):
    from datakit.study import arms
    m = make_manifest({"0": 4, "1": 4})
    run = tmp_path / "runs" / "a" / "seed0"
    RunDir(run).create()
    (run / "config.json").write_text(json.dumps({"manifest_checksum": m.checksum, "steps": 5}))
    buf = io.BytesIO()
    np.savez(buf, images=np.zeros((4, 8, 8, 1), np.uint8), labels=np.zeros(4, np.int64))
    (run / "generated.npz").write_bytes(buf.getvalue()[:-40])  # cut short: not a zip any more
    calls = []
    monkeypatch.setattr(arms, "train", lambda cfg: calls.append(cfg))
    arms.train_run("a/seed0", m, {"steps": 5}, run)
    assert len(calls) == 1 and calls[0].resume is False  # trained again, from scratch
    assert datakit_warnings == [
        f"[train a/seed0] {run / 'generated.npz'} cannot be read (File is not a zip file); the "
        "run is trained again."]
