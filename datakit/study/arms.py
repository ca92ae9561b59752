"""What one study run needs: its arm's manifest (ingested or composed, reused when done), its training
settings and budget, the shared reference and judge, and the training run itself."""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datakit._core.device import resolve_device
from datakit._core.names import describe_os_error, inside, printable
from datakit._core.progress import log, warn
from datakit.audit.inputs import read_generated
from datakit.composition.build import compose
from datakit.errors import CompositionError, DatakitError, RunDirError, StudyError
from datakit.judge.cache import cache_at, cache_root
from datakit.judge.network import JudgeConfig, judge_for_manifest
from datakit.manifest.read import read_manifest
from datakit.sources.home import HOME_SOURCES, source_home
from datakit.sources.registry import ingest
from datakit.study.spec import ArmSpec, IngestSpec, Study
from datakit.study.target import View, domain_views
from datakit.training import TrainConfig, train
from datakit.training.config import AUTO_SETTINGS, DEFAULT_STEPS
from datakit.training.rundir import MARKER


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _existing(path: Path):
    if not path.with_suffix(".json").exists():
        return None
    try:
        return read_manifest(path)
    except DatakitError:
        return None


def _ingest(spec: IngestSpec, folder: Path):
    # Without a path the files come from the data home, so its folder keys the reuse.
    where = spec.path or (str(source_home(spec.source)) if spec.source in HOME_SOURCES else None)
    out = inside(folder, folder / f"{spec.name}-{_digest([spec.source, where, spec.options])}.parquet",
                 "ingest manifest")
    return _reuse_or_make(out, f"ingest {spec.name}", f"{spec.source} {where or ''}",
                          lambda: ingest(spec.source, spec.path, out=out, **spec.options))


def _reuse_or_make(out: Path, step: str, what: str, make):
    """The manifest a previous run made from the same inputs, else ``make()`` (logged either
    way), named by its content.

    ``out`` is ``STEM-KEY.parquet``, KEY a digest of the inputs (parents' checksums, options):
    ``make()`` writes there, and the manifest is then renamed ``STEM-CHECKSUM`` after the first
    10 hex digits of its content checksum, its sidecar recording KEY (``study_inputs``) for the
    next run to find it. So one manifest name means one content, in every study folder: the
    same inputs made by another datakit version into other images get another name.
    """
    stem, key = out.name[: -len(".parquet")].rsplit("-", 1)
    m = _made_from(out.parent, stem, key)
    if m is None:
        m = _existing(out)  # a folder of an older version: named by its inputs only
    if m is not None:
        log(f"[{step}] reusing {m.path}")
        return _named_by_content(m, stem, key)
    log(f"[{step}] {what}")
    return _named_by_content(make(), stem, key)


def _made_from(folder: Path, stem: str, key: str):
    """The manifest ``STEM-*`` of ``folder`` whose sidecar records inputs ``key``, or None."""
    for sidecar in sorted(folder.glob(f"{stem}-*.json")):
        try:
            made = json.loads(sidecar.read_text()).get("study_inputs") or []
        except (OSError, ValueError):
            continue
        if key in made:
            m = _existing(sidecar.with_suffix(".parquet"))
            if m is not None:
                return m
    return None


def _named_by_content(m, stem: str, key: str):
    """``m`` renamed ``STEM-<content checksum[:10]>`` (its three files; the sidecar's name and
    ``study_inputs`` updated), or the manifest already there under that name."""
    from datakit._core.atomic import atomic_write_text
    from datakit.manifest.model import manifest_paths
    final = Path(m.path).parent / f"{stem}-{m.checksum[:10]}.parquet"
    (fp, fj, fx), (sp, sj, sx) = manifest_paths(final), manifest_paths(m.path)
    meta = json.loads(fj.read_text()) if fj.exists() else dict(m.meta)
    if fj.exists() and meta.get("checksum") != m.checksum:
        raise StudyError(f"{fj} names other images than its name says; remove it and re-run.")
    if key in (meta.get("study_inputs") or []) and fp.resolve() == sp.resolve():
        return m
    if fp.resolve() != sp.resolve():
        if fj.exists():  # the same content under its name already: drop the staged copy
            for f in (sp, sj, sx):
                f.unlink(missing_ok=True)
        else:
            os.replace(sx, fx)
            os.replace(sp, fp)
    meta.update(name=final.name[: -len(".parquet")],
                study_inputs=sorted(set(meta.get("study_inputs") or []) | {key}))
    atomic_write_text(fj, json.dumps(meta, indent=2, default=str))
    if fp.resolve() != sp.resolve():
        sj.unlink(missing_ok=True)
    return read_manifest(fp)


def _arm_manifest(arm: ArmSpec, parents: dict[str, Any], folder: Path):
    if arm.manifest:
        return read_manifest(arm.manifest)
    ms = [parents[s] for s in arm.sources]
    if len(ms) == 1 and not arm.compose:
        return ms[0]
    out = inside(folder, folder / f"{arm.name}-{_digest([[m.checksum for m in ms], arm.compose])}.parquet",
                 "composed manifest")
    return _reuse_or_make(out, f"compose {arm.name}", f"from {', '.join(arm.sources)}",
                          lambda: _compose_arm(arm, ms, out))


def _compose_arm(arm: ArmSpec, parents: list, out: Path):
    """``compose`` for an arm; its errors name the arm and its options as the study file
    states them (a sweep's value among them), since the file, not a command line, set them."""
    try:
        return compose(parents, out, **arm.compose)
    except CompositionError as e:
        options = ", ".join(f"{k} = {json.dumps(v, default=str)}" for k, v in arm.compose.items())
        raise CompositionError(f"Arm {arm.name} could not be composed from "
                               f"{', '.join(arm.sources)} ({options}): {e}") from e


def check_budget(budget: float) -> None:
    """``--budget`` must be a finite positive number (it multiplies training steps)."""
    if not (isinstance(budget, (int, float)) and math.isfinite(budget) and budget > 0):
        raise StudyError(f"--budget must be positive, got {budget}; give a finite number such as 0.05.")


def scaled_train_settings(shared: dict[str, Any], arm: dict[str, Any], budget: float,
                          device: str | None) -> dict[str, Any]:
    """The arm's training settings with steps (or epochs) scaled by ``budget``.

    Logging and sample-grid intervals not set by the study follow the scaled length
    (about 50 log rows and 8 grids), so a short CPU run still has curves and a gif.
    """
    s = {**shared, **arm}
    check_budget(budget)
    if s.get("steps") is not None and not (isinstance(s["steps"], int) and s["steps"] >= 1):
        raise StudyError(f"steps must be an integer of at least 1, got {s['steps']!r}.")
    if s.get("epochs") is not None:
        s["epochs"] = float(s["epochs"]) * budget
        approx = None
    else:
        s["steps"] = max(1, int(round(int(s.get("steps") or DEFAULT_STEPS) * budget)))
        approx = s["steps"]
    if approx:
        s.setdefault("log_every", max(1, approx // 50))
        s.setdefault("sample_every", max(1, approx // 8))
        s.setdefault("checkpoint_every", max(1, approx // 4))
    if device:
        s["device"] = device
    return s


def _run_matches(run_dir: Path, settings: dict[str, Any], manifest) -> bool:
    """True when run_dir holds a finished run of the same manifest with the same settings."""
    return (run_dir / "generated.npz").exists() and _same_run(run_dir, settings, manifest)


def _unreadable_samples(run_dir: Path) -> str | None:
    """Why ``run_dir``'s generated.npz cannot be read (None when it reads, or is absent)."""
    if not (run_dir / "generated.npz").exists():
        return None
    try:
        read_generated(run_dir)
    except RunDirError as e:
        return str(e).rstrip(".")
    return None


def _resumable(run_dir: Path, settings: dict[str, Any], manifest) -> bool:
    """True when run_dir holds an unfinished run of the same manifest and settings with a
    checkpoint, which the trainer can continue (``resume``) instead of starting over."""
    return (not (run_dir / "generated.npz").exists()
            and (run_dir / "checkpoints" / "last.pt").exists()
            and _same_run(run_dir, settings, manifest))


def _same_run(run_dir: Path, settings: dict[str, Any], manifest) -> bool:
    cfg_path = run_dir / "config.json"
    if not cfg_path.exists():
        return False
    try:
        cfg = json.loads(cfg_path.read_text())
    except ValueError:
        return False
    if cfg.get("manifest_checksum") != manifest.checksum:
        return False
    ignore = {"device", "out", "manifest", "resume"}
    # A run's identity is the study's settings as the file states them, not as a device
    # resolved them: a batch or rate left at auto (absent, or 0) names no value, so it matches
    # whatever the run recorded, just as the device is not compared. So a study finished on a
    # GPU (batch 256) is reused, not retrained, when its report is remade on a laptop (where
    # auto means 64); an unfinished run resumes with the values it recorded (the trainer keeps
    # them, see accel.resolve_batch); and a study file that sets batch_size keeps its identity.
    # Runs of one study made on different devices may so differ in batch: study.json's budget
    # says so (results.budget_record).
    auto = {k for k in AUTO_SETTINGS if not settings.get(k)}
    return all(cfg.get(k) == v for k, v in settings.items()
               if k not in ignore and k not in auto and k in cfg)


#: What datakit writes into a run folder (training, sampling, the audit); anything else in
#: one is the user's, and a study moves it aside before replacing the run.
RUN_ENTRIES = frozenset({MARKER, "config.json", "metrics.csv", "samples", "training.gif",
                         "checkpoints", "generated.npz", "audit"})


def _written_by_datakit(name: str) -> bool:
    """True for an entry of :data:`RUN_ENTRIES` or the temporary file of one (``.NAME.tmp-PID``)."""
    if name in RUN_ENTRIES:
        return True
    base, sep, pid = name.rpartition(".tmp-")
    return bool(sep) and pid.isdigit() and base.startswith(".") and base[1:] in RUN_ENTRIES


def _move_aside(run_dir: Path, names: list[str]) -> Path:
    """Move ``names`` (entries of ``run_dir``) into a new sibling ``<run>.kept[-N]``; return it."""
    for k in range(1, 1000):
        kept = run_dir.with_name(f"{run_dir.name}.kept" + (f"-{k}" if k > 1 else ""))
        try:
            kept.mkdir()
            break
        except FileExistsError:
            continue
    else:
        raise StudyError(f"{run_dir} holds files that datakit did not write, and no free "
                         f"{run_dir.name}.kept-N folder is left to move them to; move them away.")
    for name in names:
        (run_dir / name).rename(kept / name)
    return kept


def _remove_stale_run(run_dir: Path) -> None:
    """Delete ``run_dir`` only if datakit made it (its marker file says so); else refuse.

    A folder without the marker may be the user's own (notes, another tool's run): it is
    never deleted. In a marked folder, what datakit did not write (a ``notes.txt``) is moved
    to ``<run>.kept`` beside it first, with a warning. An empty folder is left for the
    trainer to fill.
    """
    if run_dir.is_symlink() or not run_dir.is_dir():
        raise StudyError(f"{run_dir} is in the way of the run folder and was not made by "
                         "datakit; move it away, or pass another --out.")
    if not any(run_dir.iterdir()):
        return
    if not (run_dir / MARKER).is_file():
        raise StudyError(f"{run_dir} holds files that datakit did not write (no {MARKER} "
                         "marker), so it was left alone; move them away, or pass another --out.")
    try:
        foreign = sorted(e.name for e in os.scandir(run_dir) if not _written_by_datakit(e.name))
        if foreign:
            kept = _move_aside(run_dir, foreign)
            warn(f"[train] {run_dir} holds files that datakit did not write "
                 f"({', '.join(printable(f) for f in foreign[:5])}"
                 f"{', ...' if len(foreign) > 5 else ''}); they were moved to {kept} before "
                 "the stale run was replaced.")
        log(f"[train] {run_dir} holds a different or unfinished run: replacing it")
        shutil.rmtree(run_dir)
    except OSError as e:
        raise StudyError(f"Cannot remove the stale run {run_dir} ({describe_os_error(e)}); "
                         "remove it by hand.") from e


def train_run(name: str, manifest, settings: dict[str, Any], run_dir: Path) -> Path:
    """Train run ``name`` ("ARM/seedK") into ``run_dir``: reuse a finished run with the same
    manifest and settings, resume an unfinished one from its checkpoint, else start over."""
    what = f"train {name}"
    broken = _unreadable_samples(run_dir)
    if broken:
        # A finished run whose samples cannot be read (a truncated copy, a full disk) would be
        # reused, and fail its audit, on every re-run: train it again instead.
        warn(f"[{what}] {broken}; the run is trained again.")
        _remove_stale_run(run_dir)
    if _run_matches(run_dir, settings, manifest):
        log(f"[{what}] reusing {run_dir} (same manifest and settings)")
        return run_dir
    resume = _resumable(run_dir, settings, manifest)
    if resume:
        log(f"[{what}] resuming the unfinished run in {run_dir} from its checkpoint")
    else:
        if run_dir.exists():
            _remove_stale_run(run_dir)
        log(f"[{what}] {settings.get('model', 'acgan')}, "
            f"{settings.get('steps') or str(settings.get('epochs')) + ' epochs'} "
            f"on {len(manifest):,} images")
    train(TrainConfig(manifest=str(Path(manifest.path).resolve()), out=str(run_dir),
                      resume=resume, **settings))
    return run_dir


def prepare_manifests(study: Study, folder: Path) -> tuple[dict[str, Any], "Reference"]:
    """Every arm's manifest (ingested and composed once, or reused) and the reference."""
    needed = {s for a in study.arms for s in a.sources}
    parents = {name: _ingest(spec, folder) for name, spec in study.ingests.items() if name in needed}
    manifests = {arm.name: _arm_manifest(arm, parents, folder) for arm in study.arms}
    return manifests, _reference_manifest(study, manifests, folder)


def judge_cache(out: Path) -> Path:
    """The judge cache of a study's tasks: DATAKIT_CACHE when set, else ``<study>/cache``
    (a folder every worker sees, since the study folder must be shared)."""
    return cache_root(default=out / "cache").resolve()


def train_shared_judge(reference: "Reference", audit_cfg, cache: Path) -> None:
    """Train (or find cached) the reference's judge once, before the runs, as each audit
    would (same settings, same cache key), so that every task only loads it."""

    if not audit_cfg.use_cache:
        return  # every audit trains its own judge
    import torch
    if audit_cfg.device.startswith("cuda") and not torch.cuda.is_available():
        # A Ray driver may have no GPU while its workers do. The cache key names the device type
        # that trained the judge (a CPU judge is not the GPU one, to the last digit), so a judge
        # trained here would not be the one the workers' audits look up: they train their own.
        log("The audits run on CUDA and this machine has no GPU: each audit trains (or "
                 "finds cached) its judge on its own GPU.")
        return
    judge_cfg = JudgeConfig(**{**audit_cfg.judge.__dict__, "device": str(resolve_device(audit_cfg.device))})
    with cache_at(cache):
        judge_for_manifest(read_manifest(reference.path), judge_cfg, use_cache=True)


@dataclass
class Reference:
    """The one real image set (and judge) every arm is measured against.

    With a target domain (``[compare] target = "wild"``) the judge is trained on the whole
    reference while every run is measured against its images of the target (the primary
    view) and, beside it, of each other domain (:mod:`datakit.study.target`).
    """

    name: str          # an arm name, or "union"
    path: Path         # its manifest (.parquet): the judge's, and the real images without a target
    checksum: str
    views: list[View] = field(default_factory=list)

    @property
    def measured(self) -> Path:
        """The manifest whose real images every run's primary audit measures against."""
        return next((v.path for v in self.views if v.primary), self.path)

    @property
    def other_views(self) -> list[View]:
        return [v for v in self.views if not v.primary]


def _reference_manifest(study: Study, manifests: dict[str, Any], folder: Path) -> Reference:
    """The reference manifest: a named arm's, or the union of every arm's (composed once,
    exact duplicates dropped, so an image shared by several arms counts once)."""

    if study.reference != "union":
        m = manifests[study.reference]
        name = study.reference
    else:
        ms = list({m.checksum: m for m in manifests.values()}.values())
        out = folder / f"union-{_digest(sorted(m.checksum for m in ms))}.parquet"
        m = _reuse_or_make(out, "compose union", f"the union of {len(ms)} arm manifests",
                           lambda: compose(ms, out, dedupe="exact"))
        name = "union"

    def one_domain(domain: str):
        if set(m.table["domain"].astype(str)) == {domain}:
            return m  # the reference is all of that domain already
        out = inside(folder, folder / f"{name}-{domain}-{_digest([m.checksum, domain])}.parquet",
                     "reference view")
        return _reuse_or_make(out, f"reference {name} ({domain})", f"its {domain} images",
                              lambda: compose([m], out, domain=[domain]))
    return Reference(name, Path(m.path), m.checksum, domain_views(m, study.target, one_domain))
