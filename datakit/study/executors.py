"""Where a study's runs execute: in this process, in N local processes, or as Ray tasks.

A study hands every (arm, seed) run over as one :class:`RunTask` (train, then audit); the
data (ingests, compositions) and the shared judge are made before, by the study itself, so
a task only reads them. Every executor returns the same :class:`RunOutcome` list in task
order, and a task does the same work wherever it runs:

* its torch CPU threads are fixed (``threads``), so a CPU run computes the same numbers
  in any executor;
* it reads and writes the judge cache the study chose (``cache``), so the judge trained
  once by the study is the one every audit loads;
* it first checks that it sees the study folder (a token file the study wrote), because
  run folders must live on storage every worker sees.

Executors: ``local`` with ``jobs = 1`` (one run after another, in this process), ``local``
with ``jobs = N`` (a spawn process pool, N runs at once) and ``ray`` (one Ray task per run,
on the cluster named by ``RAY_ADDRESS`` or a Ray instance started here).
"""
from __future__ import annotations

import contextlib
import os
import socket
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Iterator

from datakit._core.atomic import atomic_write_bytes
from datakit._core.progress import log, progress
from datakit.audit.config import AuditConfig
from datakit.audit.many import audit_runs
from datakit.audit.schema import Audit
from datakit.errors import DatakitError, StudyError
from datakit.judge.cache import cache_at
from datakit.manifest.read import read_manifest
from datakit.study.arms import train_run
from datakit.study.spec import EXECUTORS
from datakit.study.target import audit_view

#: The file a study writes in its folder so that a worker can prove it sees that folder.
TOKEN_NAME = ".datakit-study-token"
RAY_MISSING = "--executor ray needs Ray: pip install 'datakit[ray]'"


@dataclass
class ExecutorConfig:
    """How a study's runs are executed (``datakit study --executor/--jobs/--threads``).

    Attributes:
        name: ``local`` or ``ray``.
        jobs: runs at once under the local executor (1: in this process).
        threads: torch CPU threads of every run (0: the cores divided by ``jobs`` locally,
            1 under Ray); under Ray also the CPUs each task requests.
    """

    name: str = "local"
    jobs: int = 1
    threads: int = 0

    def validate(self) -> None:
        """Raise :class:`StudyError` for a bad executor, job count or thread count."""
        if self.name not in EXECUTORS:
            raise StudyError(f"Unknown executor {self.name!r}; use one of {', '.join(EXECUTORS)}.")
        if self.jobs < 1 or self.threads < 0:
            raise StudyError(f"--jobs must be at least 1 and --threads 0 (automatic) or more, "
                             f"got jobs={self.jobs}, threads={self.threads}.")
        if self.name == "ray" and self.jobs != 1:
            raise StudyError("--jobs is for the local executor; under --executor ray the "
                             "cluster's CPUs decide how many runs go at once (set --threads).")

    def threads_per_run(self) -> int:
        """The torch threads (and Ray CPUs) of one run."""
        if self.threads:
            return self.threads
        if self.name == "ray":
            return 1
        return max(1, (os.cpu_count() or 1) // self.jobs)

    def record(self) -> dict[str, Any]:
        """What study.json records: ``executor``, ``jobs`` and ``threads_per_run``."""
        return {"executor": self.name, "jobs": self.jobs, "threads_per_run": self.threads_per_run()}


@dataclass(frozen=True)
class RunTask:
    """One unit of work: train one arm on one seed (or reuse / resume it), then audit it.

    Every path is absolute: a worker may run in another folder or on another host.
    """

    arm: str
    seed: int
    manifest: str                 # the arm's manifest (.parquet)
    settings: dict[str, Any]      # TrainConfig fields except manifest, out, resume
    run_dir: str
    audit: dict[str, Any]         # AuditConfig.to_dict()
    cache: str                    # DATAKIT_CACHE of the task (the study's judge cache)
    token: str                    # the study folder's token file ...
    token_value: str              # ... and what it must hold
    threads: int = 1
    gpu: bool = False             # trains on CUDA: a Ray task requests one GPU
    views: tuple = ()             # (view, AuditConfig.to_dict()): audits against other-domain
                                  # real images (datakit.study.target)

    @property
    def name(self) -> str:
        return f"{self.arm}/seed{self.seed}"


@dataclass
class RunOutcome:
    """What a task returns: its run folder, its audit and its other-domain views' audits."""

    arm: str
    seed: int
    run_dir: str
    audit: Audit
    views: dict[str, Audit] = field(default_factory=dict)


# -- the work of one task (runs in a worker) ------------------------------------------------

def run_task(task: RunTask) -> RunOutcome:
    """Check the study folder is visible, then train and audit one run."""

    check_shared_storage(task)
    with cache_at(task.cache), _torch_threads(task.threads):
        manifest = read_manifest(task.manifest)
        run_dir = train_run(task.name, manifest, dict(task.settings), Path(task.run_dir))
        audit = audit_runs([run_dir], config=AuditConfig.from_dict(task.audit), reuse=True)[0]
        views = {name: audit_view(run_dir, name, AuditConfig.from_dict(cfg))
                 for name, cfg in task.views}
    return RunOutcome(task.arm, task.seed, task.run_dir, audit, views)


def write_token(folder: Path) -> tuple[Path, str]:
    """Write the study folder's token file (a fresh random value); returns (path, value)."""
    value = uuid.uuid4().hex
    path = folder.resolve() / TOKEN_NAME
    atomic_write_bytes(path, value.encode())
    return path, value


def check_shared_storage(task: RunTask) -> None:
    """Raise :class:`StudyError` unless this worker reads the token the study wrote."""
    token = Path(task.token)
    try:
        seen = token.read_text()
    except OSError:
        seen = None
    if seen != task.token_value:
        why = "is missing" if seen is None else "belongs to another study run"
        raise StudyError(
            f"Run {task.name} on host {socket.gethostname()} cannot see the study folder "
            f"{token.parent} (its {token.name} {why}). The study folder must be on shared "
            "storage that every worker mounts at the same path (e.g. NFS); pass such a folder "
            "with --out.")


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# -- executors ------------------------------------------------------------------------------

def require_ray():
    """The ray module, or a :class:`StudyError` that says how to install it."""
    try:
        import ray
    except ImportError:
        raise StudyError(f"{RAY_MISSING} (or choose --executor local).") from None
    return ray


def execute(tasks: list[RunTask], config: ExecutorConfig) -> list[RunOutcome]:
    """Run every task with the chosen executor; the outcomes come back in task order."""
    with progress(total=len(tasks), desc="study runs", unit="run") as bar:
        if config.name == "ray":
            return _execute_ray(tasks, bar)
        if config.jobs > 1:
            return _execute_pool(tasks, config.jobs, bar)
        return [_logged(run_task(t), i, len(tasks), bar) for i, t in enumerate(tasks)]


def _logged(outcome: RunOutcome, i: int, n: int, bar) -> RunOutcome:
    log(f"[run {outcome.arm}/seed{outcome.seed}] done ({i + 1}/{n})")
    bar.update(1)  # off a terminal: the study's rate and ETA, at most every DATAKIT_PROGRESS_EVERY s
    return outcome


def _execute_pool(tasks: list[RunTask], jobs: int, bar) -> list[RunOutcome]:
    """``jobs`` spawned processes (spawn: no fork of a process that holds torch threads)."""
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_task, t) for t in tasks]
        try:
            return [_logged(f.result(), i, len(tasks), bar) for i, f in enumerate(futures)]
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def _execute_ray(tasks: list[RunTask], bar) -> list[RunOutcome]:
    """One Ray task per run with its CPU (and GPU) request, on RAY_ADDRESS or a local Ray."""
    ray = require_ray()
    started = _connect_ray(ray)
    try:
        remote = ray.remote(max_retries=0)(run_task)
        refs = [remote.options(num_cpus=t.threads, num_gpus=1 if t.gpu else 0).remote(t)
                for t in tasks]
        try:
            return [_logged(_ray_get(ray, r), i, len(tasks), bar) for i, r in enumerate(refs)]
        except BaseException:
            _cancel_pending(ray, refs)
            raise
    finally:
        if started:
            ray.shutdown()


def _cancel_pending(ray, refs: list) -> None:
    """Cancel the tasks that have not finished. A finished one is left alone: cancelling it
    can abort the whole driver process in Ray ("Check failed: ... Tried to complete task
    that was not pending", task_manager.cc), which took a test session down with it."""
    _, pending = ray.wait(refs, num_returns=len(refs), timeout=0)
    for r in pending:
        ray.cancel(r)


def _connect_ray(ray) -> bool:
    """Join the cluster at RAY_ADDRESS (or the Ray already initialised), else start a local
    instance; returns whether this call started it (then the caller shuts it down)."""
    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS")
    for attempt in (1, 2):
        try:
            if address:
                log(f"Ray: connecting to the cluster at {address}")
                ray.init(address=address, log_to_driver=False)
            else:
                cpus = os.cpu_count() or 1
                log(f"Ray: starting a local instance with {cpus} CPUs")
                ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                         runtime_env={"env_vars": _worker_env()})
            return True
        except Exception as e:  # Ray raises bare Exceptions, ConnectionErrors, RuntimeErrors
            if address or attempt == 2:
                where = (f"the Ray cluster at RAY_ADDRESS={address}" if address
                         else "a local Ray instance")
                raise StudyError(f"Could not start or join {where} ({e}). Check it is running "
                                 "(`ray status`), retry, or run with --executor local (--jobs N)."
                                 ) from e
            # On a loaded machine Ray's agents can miss the raylet's fixed start-up timeout
            # (ray-project/ray#65983); a second start usually succeeds.
            log(f"Ray did not start ({e}); trying once more")
            ray.shutdown()
    return True


def _worker_env() -> dict[str, str]:
    """PYTHONPATH of a local Ray's workers: this datakit first (e.g. a source checkout)."""
    here = str(Path(__file__).resolve().parent.parent)
    rest = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": here + (os.pathsep + rest if rest else "")}


def _ray_get(ray, ref) -> RunOutcome:
    """ray.get, raising a task's own DatakitError (not Ray's wrapper) when it failed."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, DatakitError):
            raise cause from None
        raise

