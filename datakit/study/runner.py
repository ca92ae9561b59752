"""``run_study``: every arm and seed of a study trained and audited (reusing what is done), then study.json and the report."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datakit._core.names import inside
from datakit._core.progress import log
from datakit.audit import AuditConfig
from datakit.audit.schema import Audit
from datakit.errors import StudyError
from datakit.study.arms import (
    check_budget,
    judge_cache,
    prepare_manifests,
    scaled_train_settings,
    train_shared_judge,
)
from datakit.study.executors import ExecutorConfig, RunTask, execute, require_ray, write_token
from datakit.study.results import write_study_outputs
from datakit.study.spec import Study, split_overrides


@dataclass
class StudyResult:
    """What :func:`run_study` produced: the report, study.json and every run ("ARM/seedK")."""

    report: Path
    summary: Path
    runs: dict[str, Path]
    audits: dict[str, Audit]


def run_study(study: Study, out: str | os.PathLike | None = None, *, budget: float = 1.0,
              device: str | None = None, overrides: dict[str, Any] | None = None,
              executor: str | None = None, jobs: int | None = None,
              threads: int | None = None) -> StudyResult:
    """Run every arm of ``study`` once per seed (ingest → compose → train → audit), compare
    the arms with contrasts, and write ``report.html``, ``study.json`` (and ``curve.csv``
    for sweeps) in the study folder.

    The ingests and compositions the runs need, and the shared judge, are made first, here;
    then every run (arm × seed: train + audit) is one task of the executor
    (:mod:`datakit.study.executors`), which gives the same runs and numbers in any executor.

    Args:
        study: a parsed study (:func:`load_study`).
        out: the study folder (default ``studies/<name>``): ``manifests/``,
            ``runs/<arm>/seed<k>/``, ``report.html``, ``study.json`` and ``curve.csv`` go there.
            Under Ray it must be on storage every worker sees, at the same path.
        budget: multiplies every arm's training steps (e.g. 0.05 on a CPU).
        device: ``auto``, ``cpu`` or ``cuda`` for training and audit (default: the study's).
        overrides: training settings that replace the study's for every arm (e.g. a
            smaller ``width`` for a CPU run; recorded in each run's config.json), and audit
            settings as ``audit.NAME`` (e.g. ``audit.cas = False``).
        executor, jobs, threads: ``local`` or ``ray``, runs at once under ``local``, torch
            threads per run (default: the study's [study] values, else local, 1, automatic).
    """

    check_budget(budget)  # before any work starts
    train_overrides, audit_overrides = split_overrides(overrides)
    chosen = {"name": executor, "jobs": jobs, "threads": threads}
    spec = {"name": study.executor.get("executor", "local"), "jobs": study.executor.get("jobs", 1),
            "threads": study.executor.get("threads", 0),
            **{k: v for k, v in chosen.items() if v is not None}}
    plan = ExecutorConfig(**spec)
    plan.validate()
    if plan.name == "ray":
        require_ray()  # before any work
    else:
        _check_devices_here(study, train_overrides, audit_overrides, device)
    out = Path(out) if out is not None else Path("studies") / study.name
    mdir, rdir = out / "manifests", out / "runs"
    mdir.mkdir(parents=True, exist_ok=True)

    # 1) the data every run reads: ingests, compositions and the reference, made once
    manifests, reference = prepare_manifests(study, mdir)
    # 2) the shared judge, trained once into the cache every task reads
    audit_cfg = _audit_config(study.audit, audit_overrides, device, reference.path,
                              reference.measured)
    views = tuple((v.name, _audit_config(study.audit, audit_overrides, device, reference.path,
                                         v.path).to_dict()) for v in reference.other_views)
    cache = judge_cache(out)
    train_shared_judge(reference, audit_cfg, cache)
    # 3) one task per run (arm × seed), executed where the plan says
    token, token_value = write_token(out)
    tasks, runs = [], {}
    for arm in study.arms:
        for seed in study.seeds:
            settings = scaled_train_settings(study.train, {**arm.train, **train_overrides},
                                             budget, device)
            settings["seed"] = seed
            runs[(arm.name, seed)] = inside(rdir, rdir / arm.name / f"seed{seed}", "run folder")
            tasks.append(RunTask(
                arm.name, seed, str(Path(manifests[arm.name].path).resolve()), settings,
                str(runs[(arm.name, seed)].resolve()), audit_cfg.to_dict(), str(cache),
                str(token), token_value, plan.threads_per_run(),
                _trains_on_cuda(settings.get("device", "auto")), views))
    log(f"== {len(tasks)} runs ({len(study.arms)} arms × {len(study.seeds)} seeds), executor "
        f"{plan.name}" + (f", {plan.jobs} at once" if plan.jobs > 1 else "")
        + f", {plan.threads_per_run()} threads each")
    outcomes = execute(tasks, plan)
    audits = [o.audit for o in outcomes]
    # 4) study.json, curve.csv and the report
    replaced = {**train_overrides, **{f"audit.{k}": v for k, v in audit_overrides.items()}}
    report, summary = write_study_outputs(study, out, runs, audits, manifests, reference,
                                          budget=budget, overrides=replaced,
                                          executor=plan.record(),
                                          views=[o.views for o in outcomes])
    log(f"Study report: {report}")
    return StudyResult(report, summary, {f"{a}/seed{s}": p for (a, s), p in runs.items()},
                       {f"{a}/seed{s}": au for (a, s), au in zip(runs, audits)})


def _check_devices_here(study: Study, train_overrides: dict[str, Any],
                        audit_overrides: dict[str, Any], device: str | None) -> None:
    """A GPU asked for (training or audit) on a machine without one is refused before any
    ingest, compose or training, since a local executor runs everything here. (Under Ray
    the workers may have GPUs the driver lacks, so nothing is checked there.)"""
    asked = {"[audit] device": device or {**study.audit, **audit_overrides}.get("device", "auto")}
    for arm in study.arms:
        settings = {**study.train, **arm.train, **train_overrides}
        asked[f"arm {arm.name} device"] = device or settings.get("device", "auto")
    wanted = {k: v for k, v in asked.items() if str(v).startswith("cuda")}
    if not wanted:
        return
    import torch
    if not torch.cuda.is_available():
        what, name = next(iter(wanted.items()))
        raise StudyError(f"{study.path or 'The study'}: {what} is {name!r} but PyTorch sees no "
                         "CUDA GPU on this machine; use device = \"cpu\" or \"auto\" (or "
                         "--device cpu), or run the study where a GPU is.")


def _trains_on_cuda(device: str) -> bool:
    """Whether a run with this --device trains on a GPU (auto: when this machine has one)."""
    if device == "cuda":
        return True
    if device != "auto":
        return False
    import torch
    return torch.cuda.is_available()


def _audit_config(audit: dict[str, Any], overrides: dict[str, Any], device: str | None,
                  reference: Path, measured: Path | None = None):
    """The study's AuditConfig: one judge (trained on ``reference``) and one real image set
    (``measured``, default the reference itself; a target domain's images of it) for every run."""
    judge = str(Path(reference).resolve())
    settings = {**audit, **overrides, **({"device": device} if device else {}),
                "judge_manifest": judge,
                "reference_manifest": str(Path(measured or reference).resolve())}
    return AuditConfig.from_dict(settings)
