"""Study executors: local, --jobs N and Ray give the same runs and numbers; Ray is optional;
a worker that cannot see the study folder fails with a sentence."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import progress_lines

from datakit.cli import main
from datakit.errors import StudyError
from datakit.study.executors import ExecutorConfig, RunTask, run_task
from datakit.study.runner import run_study
from datakit.study.spec import load_study

TINY = """
[study]
name = "tiny"
seeds = [0, 1]

[ingest.digits]
source = "digits"
size = 32

[train]
model = "acgan"
steps = 3
width = 8
batch_size = 16
n_generate = 8
log_every = 1

[audit]
cas = false
bootstrap = 3
kid_subsets = 3
judge = { epochs = 1, max_train_images = 200 }

[[arm]]
name = "small"
from = ["digits"]
compose = { size = 100, holdout = 0.3, seed = 0 }

[[arm]]
name = "large"
from = ["digits"]
compose = { size = 160, holdout = 0.3, seed = 0 }
"""


def _study(tmp_path: Path):
    p = tmp_path / "tiny.toml"
    p.write_text(TINY)
    return load_study(p)


def _numbers(summary_path: Path) -> list:
    """(arm, seed, run_dir, summary metrics) of every run in study.json."""
    data = json.loads(summary_path.read_text())
    return [(r["arm"], r["seed"], r["run_dir"], r["summary"]) for r in data["runs"]]


@pytest.fixture(scope="module")
def local_study(tmp_path_factory):
    """The tiny study with the local executor, one run after another, one thread each."""
    tmp = tmp_path_factory.mktemp("local")
    result = run_study(_study(tmp), out=tmp / "out", device="cpu", threads=1)
    return tmp, result


def test_executor_config_threads_and_record(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert ExecutorConfig("local", jobs=1).threads_per_run() == 16
    assert ExecutorConfig("local", jobs=4).threads_per_run() == 4
    assert ExecutorConfig("local", jobs=32).threads_per_run() == 1
    assert ExecutorConfig("ray").threads_per_run() == 1
    assert ExecutorConfig("ray", threads=3).record() == {
        "executor": "ray", "jobs": 1, "threads_per_run": 3}
    with pytest.raises(StudyError, match="--jobs is for the local executor"):
        ExecutorConfig("ray", jobs=2).validate()
    with pytest.raises(StudyError, match="Unknown executor 'dask'; use one of local, ray."):
        ExecutorConfig("dask").validate()


def test_the_judge_cache_is_the_configured_one_else_in_the_study_folder(tmp_path, monkeypatch):
    from datakit.study.arms import judge_cache
    monkeypatch.setenv("DATAKIT_CACHE", str(tmp_path / "shared-cache"))
    assert judge_cache(tmp_path / "s") == tmp_path / "shared-cache"
    monkeypatch.delenv("DATAKIT_CACHE")
    assert judge_cache(tmp_path / "s") == tmp_path / "s" / "cache"


def test_study_file_executor_is_checked(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text(TINY.replace('seeds = [0, 1]', 'seeds = [0]\nexecutor = "slurm"'))
    with pytest.raises(StudyError, match=r"\[study\]: executor = 'slurm' is not one of local, ray."):
        load_study(p)
    p.write_text(TINY.replace('seeds = [0, 1]', 'seeds = [0]\njobs = 0'))
    with pytest.raises(StudyError, match=r"jobs must be an integer of at least 1, got 0."):
        load_study(p)


def test_ray_missing_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    p = tmp_path / "tiny.toml"
    p.write_text(TINY)
    result = CliRunner().invoke(main, ["study", str(p), "--out", str(tmp_path / "out"),
                                       "--executor", "ray"])
    assert result.exit_code == 1
    assert result.output == ("Error: --executor ray needs Ray: pip install 'datakit[ray]' "
                             "(or choose --executor local).\n")
    assert not (tmp_path / "out").exists()  # refused before any work


def test_a_task_that_cannot_see_the_study_folder_says_so(tmp_path):
    task = RunTask("small", 0, str(tmp_path / "m.parquet"), {}, str(tmp_path / "run"), {},
                   str(tmp_path / "cache"), str(tmp_path / "elsewhere" / ".datakit-study-token"),
                   "abc")
    with pytest.raises(StudyError) as e:
        run_task(task)
    assert str(e.value).startswith("Run small/seed0 on host ")
    assert (f"cannot see the study folder {tmp_path / 'elsewhere'} (its .datakit-study-token "
            "is missing). The study folder must be on shared storage that every worker mounts "
            "at the same path (e.g. NFS); pass such a folder with --out.") in str(e.value)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / ".datakit-study-token").write_text("another")
    with pytest.raises(StudyError, match="belongs to another study run"):
        run_task(task)


@pytest.mark.slow
def test_a_study_off_a_terminal_logs_how_far_its_runs_are(tmp_path, off_terminal, caplog):
    p = tmp_path / "two-runs.toml"
    p.write_text(TINY.replace("seeds = [0, 1]", "seeds = [0]"))  # 2 arms x 1 seed
    off_terminal.tick = 30  # each clock reading 30 s later: every stage is long enough to log
    run_study(load_study(p), out=tmp_path / "out", device="cpu", threads=1)
    runs = progress_lines(caplog, "study runs")
    assert [line.split(",")[0] for line in runs[:2]] == ["study runs: 1/2 (50%)",
                                                         "study runs: 2/2 (100%)"]
    assert runs[2].startswith("study runs: 2/2 done in ") and len(runs) == 3
    # and inside each run, its training and its audit say how far they are
    assert len([line for line in progress_lines(caplog, "train acgan") if " done in " in line]) == 2
    assert len([line for line in progress_lines(caplog, "audit checks") if " done in " in line]) == 2


@pytest.mark.slow
def test_local_study_records_its_executor_and_reuses(local_study):
    tmp, result = local_study
    data = json.loads(result.summary.read_text())
    assert (data["executor"], data["jobs"], data["threads_per_run"]) == ("local", 1, 1)
    assert [(r["arm"], r["seed"]) for r in data["runs"]] == [
        ("small", 0), ("small", 1), ("large", 0), ("large", 1)]
    judges = {json.loads((p / "audit" / "audit.json").read_text())["judge"].get("cached")
              for p in result.runs.values()}  # one judge, trained before the runs, in the cache
    assert len(judges) == 1 and next(iter(judges)).startswith(os.environ["DATAKIT_CACHE"])
    mtimes = {n: (p / "generated.npz").stat().st_mtime_ns for n, p in result.runs.items()}
    again = run_study(_study(tmp), out=tmp / "out", device="cpu", threads=1, jobs=2)
    assert {n: (p / "generated.npz").stat().st_mtime_ns for n, p in again.runs.items()} == mtimes
    assert _numbers(again.summary) == _numbers(result.summary)


@pytest.mark.slow
def test_jobs_2_gives_the_numbers_of_the_local_executor(local_study, tmp_path):
    _, local = local_study
    result = run_study(_study(tmp_path), out=tmp_path / "out", device="cpu", jobs=2, threads=1)
    data = json.loads(result.summary.read_text())
    assert (data["executor"], data["jobs"]) == ("local", 2)
    assert _numbers(result.summary) == _numbers(local.summary)


@pytest.mark.slow
def test_ray_gives_the_numbers_of_the_local_executor(local_study, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    _, local = local_study
    result = run_study(_study(tmp_path), out=tmp_path / "out", device="cpu", executor="ray")
    assert not ray.is_initialized()  # the Ray it started is shut down
    data = json.loads(result.summary.read_text())
    assert (data["executor"], data["threads_per_run"]) == ("ray", 1)
    assert _numbers(result.summary) == _numbers(local.summary)


@pytest.mark.slow
def test_a_ray_worker_that_cannot_see_the_study_folder_fails_clearly(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    import datakit.study.executors as ex
    import datakit.study.runner as runner

    real = ex.write_token

    def token_elsewhere(folder):  # the driver's token lands where no worker looks
        path, value = real(tmp_path / "private")
        return tmp_path / "not-shared" / path.name, value
    (tmp_path / "private").mkdir()
    monkeypatch.setattr(runner, "write_token", token_elsewhere)  # where run_study looks it up
    study = _study(tmp_path)
    study.seeds = [0]
    with pytest.raises(StudyError, match=r"Run small/seed0 on host .* cannot see the study "
                                         r"folder .*not-shared .*must be on shared storage"):
        run_study(study, out=tmp_path / "out", device="cpu", executor="ray")


def test_a_ray_that_cannot_start_says_what_to_do(monkeypatch):
    ray = pytest.importorskip("ray")
    import datakit.study.executors as ex

    def fail(**kwargs):
        raise Exception("The current node timed out during startup.")
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", fail)
    monkeypatch.setenv("RAY_ADDRESS", "head:6379")
    with pytest.raises(StudyError, match=r"^Could not start or join the Ray cluster at "
                                         r"RAY_ADDRESS=head:6379 \(The current node timed out "
                                         r"during startup.\)\. Check it is running"):
        ex._connect_ray(ray)


def test_a_local_ray_that_fails_to_start_is_tried_twice(monkeypatch):
    ray = pytest.importorskip("ray")
    import datakit.study.executors as ex
    calls = []

    def fail_once(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise Exception("The current node timed out during startup.")
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", fail_once)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert ex._connect_ray(ray) is True and len(calls) == 2
    assert calls[1]["include_dashboard"] is False and calls[1]["num_cpus"] >= 1


def test_a_failed_ray_study_cancels_only_the_runs_still_going(monkeypatch):
    # Cancelling a task that has finished can abort Ray's driver (a Ray bug that took a CI
    # run down): when one run fails, only the runs not yet finished are cancelled.
    ray = pytest.importorskip("ray")
    import datakit.study.executors as ex
    cancelled = []
    monkeypatch.setattr(ray, "wait", lambda refs, num_returns, timeout: (refs[:1], refs[1:]))
    monkeypatch.setattr(ray, "cancel", cancelled.append)
    ex._cancel_pending(ray, ["failed", "running", "queued"])
    assert cancelled == ["running", "queued"]
