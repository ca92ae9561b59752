"""Audit studies: declarative TOML files that run ingest → compose → train → audit for several
training sets ("arms") and write one comparison report.

A study file (see ``audits/*.toml``)::

    [study]
    name = "mnist_size"
    title = "MNIST at 1k, 5k and 60k images"
    description = "Does a larger training set give a better generator?"

    [ingest.mnist]                        # named ingests, shared by the arms
    source = "mnist"                      # no `path`: the files in DATA_HOME/mnist (datakit.data_home)
    split = "all"                         # any other key is an option of the source
    # path = "${DATAKIT_DATA}/mnist"      # a `path` takes ${VAR}s; else relative to this file

    [train]                               # TrainConfig fields shared by every arm
    model = "acgan"
    steps = 4000

    [audit]                               # AuditConfig fields (optional)

    [[arm]]
    name = "1k"
    from = ["mnist"]                      # ingest names (or `manifest = "path.parquet"`)
    compose = { size = 1000, seed = 0 }   # ComposeConfig fields (optional)
    train = { }                           # overrides of [train] (optional)

    [compare]
    factors = ["images"]                  # run properties the metrics are plotted against
    judge = "1k"                          # optional: this arm's manifest trains one judge
                                          # for all arms, so their metrics can be ranked

Everything already computed is reused: an ingest or composition whose file exists (its name
carries a hash of its inputs and options), a run whose config.json matches and that has its
generated.npz, an audit.json newer than the run's generated.npz.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from datakit.errors import DatakitError, StudyError
from datakit.progress import log

_STUDY_KEYS = {"name", "title", "description"}
_ARM_KEYS = {"name", "from", "manifest", "compose", "train"}
_INGEST_KEYS = {"source", "path"}
FACTORS = ("images", "synthetic_share", "wild_share", "handwritten_share", "skew")


@dataclass
class IngestSpec:
    """One named ingest: a source, its path (None: the data home, or an embedded source)
    and its options."""

    name: str
    source: str
    path: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ArmSpec:
    """One training set of the study: built from ingests (optionally composed) or a manifest."""

    name: str
    sources: list[str] = field(default_factory=list)
    manifest: str | None = None
    compose: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)


@dataclass
class Study:
    """A parsed study file."""

    name: str
    title: str
    description: str
    ingests: dict[str, IngestSpec]
    arms: list[ArmSpec]
    train: dict[str, Any] = field(default_factory=dict)
    audit: dict[str, Any] = field(default_factory=dict)
    factors: list[str] = field(default_factory=list)
    path: Path | None = None
    judge: str | None = None  # the arm whose manifest trains one judge for every arm


@dataclass
class StudyResult:
    """What :func:`run_study` produced: the report, the summary file and each arm's run."""

    report: Path
    summary: Path
    runs: dict[str, Path]
    audits: dict[str, dict[str, Any]]


# -- reading a study file ----------------------------------------------------------------------

def _expand(value: str, where: str, base: Path) -> str:
    """Replace ${VAR} by the environment's value; resolve a relative path against ``base``."""
    def sub(m: re.Match) -> str:
        var = m.group(1)
        if not os.environ.get(var):
            raise StudyError(f"{where} uses ${{{var}}} but {var} is not set. Set it to the folder "
                             f"that holds the data (e.g. export {var}=../shared/data).")
        return os.environ[var]
    had_var = "${" in value
    out = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", sub, value)
    if not had_var and not Path(out).is_absolute():
        out = str((base / out).resolve())
    return out


def _check_keys(d: dict, valid: set[str], where: str) -> None:
    unknown = sorted(set(d) - valid)
    if unknown:
        raise StudyError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: "
                         f"{', '.join(sorted(valid))}.")


def _check_fields(d: dict, cls: type, where: str) -> None:
    _check_keys(d, {f.name for f in fields(cls)}, where)


def parse_study(data: dict[str, Any], *, path: Path | None = None) -> Study:
    """Check a study's dictionary (as read from TOML) and return a :class:`Study`."""
    from datakit.audit import AuditConfig
    from datakit.compose import ComposeConfig
    from datakit.ingest import SOURCES
    from datakit.train import TrainConfig

    where = str(path) if path else "the study"
    base = path.parent if path else Path.cwd()
    _check_keys(data, {"study", "ingest", "train", "audit", "arm", "compare"}, where)
    head = data.get("study") or {}
    _check_keys(head, _STUDY_KEYS, f"{where} [study]")
    name = str(head.get("name") or (path.stem if path else "study"))

    ingests = {}
    for iname, spec in (data.get("ingest") or {}).items():
        if not isinstance(spec, dict) or "source" not in spec:
            raise StudyError(f"{where} [ingest.{iname}] needs a `source` ({', '.join(SOURCES)}).")
        if spec["source"] not in SOURCES:
            raise StudyError(f"{where} [ingest.{iname}]: unknown source {spec['source']!r}; "
                             f"use one of {', '.join(SOURCES)}.")
        p = spec.get("path")
        ingests[iname] = IngestSpec(
            iname, spec["source"], _expand(str(p), f"{where} [ingest.{iname}]", base) if p else None,
            {k: v for k, v in spec.items() if k not in _INGEST_KEYS})

    shared_train = dict(data.get("train") or {})
    _check_fields(shared_train, TrainConfig, f"{where} [train]")
    for k in ("manifest", "out", "resume"):
        if k in shared_train:
            raise StudyError(f"{where} [train]: `{k}` is set by the study runner, not the study file.")
    audit = dict(data.get("audit") or {})
    _check_fields(audit, AuditConfig, f"{where} [audit]")

    arms, seen = [], set()
    raw_arms = data.get("arm") or []
    if not raw_arms:
        raise StudyError(f"{where} names no arms; add [[arm]] tables with a name and `from` or `manifest`.")
    for i, a in enumerate(raw_arms):
        awhere = f"{where} arm {i + 1}"
        _check_keys(a, _ARM_KEYS, awhere)
        aname = str(a.get("name") or "")
        if not re.fullmatch(r"[A-Za-z0-9_.+-]+", aname):
            raise StudyError(f"{awhere} needs a `name` of letters, digits and _.+- (it names the "
                             f"run folder), got {aname!r}.")
        if aname in seen:
            raise StudyError(f"{where}: two arms are named {aname!r}; arm names must be unique.")
        seen.add(aname)
        srcs = list(a.get("from") or [])
        if bool(srcs) == bool(a.get("manifest")):
            raise StudyError(f"{awhere} ({aname}) needs exactly one of `from` (ingest names) or "
                             "`manifest` (a .parquet path).")
        for s in srcs:
            if s not in ingests:
                raise StudyError(f"{awhere} ({aname}) uses ingest {s!r}, which is not defined; "
                                 f"defined: {', '.join(ingests) or 'none'}.")
        compose = dict(a.get("compose") or {})
        _check_fields(compose, ComposeConfig, f"{awhere} ({aname}) compose")
        train = dict(a.get("train") or {})
        _check_fields(train, TrainConfig, f"{awhere} ({aname}) train")
        manifest = _expand(str(a["manifest"]), awhere, base) if a.get("manifest") else None
        arms.append(ArmSpec(aname, srcs, manifest, compose, train))

    compare = data.get("compare") or {}
    _check_keys(compare, {"factors", "judge"}, f"{where} [compare]")
    factors = list(compare.get("factors") or [])
    bad = [f for f in factors if f not in FACTORS]
    if bad:
        raise StudyError(f"{where} [compare]: unknown factor(s) {', '.join(bad)}; use {', '.join(FACTORS)}.")
    judge = compare.get("judge")
    if judge is not None and judge not in {a.name for a in arms}:
        raise StudyError(f"{where} [compare]: judge = {judge!r} is not an arm; use one of: "
                         f"{', '.join(a.name for a in arms)}.")
    return Study(name, str(head.get("title") or name), str(head.get("description") or ""),
                 ingests, arms, shared_train, audit, factors, path, judge)


def load_study(path: str | os.PathLike) -> Study:
    """Read and check a study file (TOML)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise StudyError(f"Study file {path} not found. Pass one of the files in audits/ "
                         "(e.g. audits/mnist_size.toml).") from None
    except tomllib.TOMLDecodeError as e:
        raise StudyError(f"Study file {path} is not valid TOML ({e}).") from e
    return parse_study(data, path=path)


# -- running it ----------------------------------------------------------------------------

def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _existing(path: Path):
    from datakit.manifest import read_manifest
    if not path.with_suffix(".json").exists():
        return None
    try:
        return read_manifest(path)
    except DatakitError:
        return None


def _ingest(spec: IngestSpec, folder: Path):
    from datakit.data_home import HOME_SOURCES, source_home
    from datakit.ingest import ingest
    # Without a path the files come from the data home, so its folder keys the reuse.
    where = spec.path or (str(source_home(spec.source)) if spec.source in HOME_SOURCES else None)
    out = folder / f"{spec.name}-{_digest([spec.source, where, spec.options])}.parquet"
    return _reuse_or_make(out, f"ingest {spec.name}", f"{spec.source} {where or ''}",
                          lambda: ingest(spec.source, spec.path, out=out, **spec.options))


def _reuse_or_make(out: Path, step: str, what: str, make):
    """The manifest at ``out`` if a previous run wrote it, else ``make()`` (logged either way)."""
    m = _existing(out)
    if m is not None:
        log(f"[{step}] reusing {out}")
        return m
    log(f"[{step}] {what}")
    return make()


def _arm_manifest(arm: ArmSpec, parents: dict[str, Any], folder: Path):
    from datakit.compose import compose
    from datakit.manifest import read_manifest
    if arm.manifest:
        return read_manifest(arm.manifest)
    ms = [parents[s] for s in arm.sources]
    if len(ms) == 1 and not arm.compose:
        return ms[0]
    out = folder / f"{arm.name}-{_digest([[m.checksum for m in ms], arm.compose])}.parquet"
    return _reuse_or_make(out, f"compose {arm.name}", f"from {', '.join(arm.sources)}",
                          lambda: compose(ms, out, **arm.compose))


def scaled_train_settings(shared: dict[str, Any], arm: dict[str, Any], budget: float,
                          device: str | None) -> dict[str, Any]:
    """The arm's training settings with steps (or epochs) scaled by ``budget``.

    Logging and sample-grid intervals not set by the study follow the scaled length
    (about 50 log rows and 8 grids), so a short CPU run still has curves and a gif.
    """
    from datakit.train.config import DEFAULT_STEPS
    s = {**shared, **arm}
    if budget <= 0:
        raise StudyError(f"--budget must be positive, got {budget}.")
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
    cfg_path = run_dir / "config.json"
    if not cfg_path.exists() or not (run_dir / "generated.npz").exists():
        return False
    try:
        cfg = json.loads(cfg_path.read_text())
    except ValueError:
        return False
    if cfg.get("manifest_checksum") != manifest.checksum:
        return False
    ignore = {"device", "out", "manifest", "resume"}
    return all(cfg.get(k) == v for k, v in settings.items() if k not in ignore and k in cfg)


def _train_arm(arm: ArmSpec, manifest, settings: dict[str, Any], run_dir: Path) -> Path:
    from datakit.train import TrainConfig, train
    if _run_matches(run_dir, settings, manifest):
        log(f"[train {arm.name}] reusing {run_dir} (same manifest and settings)")
        return run_dir
    if run_dir.exists():
        log(f"[train {arm.name}] {run_dir} holds a different or unfinished run: replacing it")
        shutil.rmtree(run_dir)
    log(f"[train {arm.name}] {settings.get('model', 'acgan')}, {settings.get('steps')} steps "
        f"on {len(manifest):,} images")
    train(TrainConfig(manifest=str(Path(manifest.path).resolve()), out=str(run_dir), **settings))
    return run_dir


def parse_overrides(pairs: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["width=16", "augment=\"none\""]`` -> {"width": 16, "augment": "none"} (TOML values;
    a bare word is taken as a string)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise StudyError(f"Bad --set {pair!r}; write KEY=VALUE with a training setting, "
                             "e.g. --set width=16.")
        try:
            out[key] = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = value.strip()
    return out


def run_study(study: Study, out: str | os.PathLike | None = None, *, budget: float = 1.0,
              device: str | None = None, overrides: dict[str, Any] | None = None) -> StudyResult:
    """Run every arm of ``study`` (ingest → compose → train → audit) and write the report.

    Args:
        study: a parsed study (:func:`load_study`).
        out: the study folder (default ``studies/<name>``): ``manifests/``, ``runs/<arm>/``,
            ``report.html`` and ``study.json`` go there.
        budget: multiplies every arm's training steps (e.g. 0.05 on a CPU).
        device: ``auto``, ``cpu`` or ``cuda`` for training and audit (default: the study's).
        overrides: training settings that replace the study's for every arm (e.g. a
            smaller ``width`` for a CPU run; recorded in each run's config.json), and audit
            settings as ``audit.NAME`` (e.g. ``audit.cas = False``).
    """
    from datakit.audit import AuditConfig
    from datakit.report.html import audit_and_report
    from datakit.train import TrainConfig

    overrides = dict(overrides or {})
    audit_overrides = {k[len("audit."):]: overrides.pop(k) for k in list(overrides)
                       if k.startswith("audit.")}
    _check_fields(audit_overrides, AuditConfig, "--set audit.NAME")
    if overrides:
        _check_fields(overrides, TrainConfig, "--set")
        for k in ("manifest", "out", "resume"):
            if k in overrides:
                raise StudyError(f"--set {k} is not allowed: the study runner sets it.")
    out = Path(out) if out is not None else Path("studies") / study.name
    mdir, rdir = out / "manifests", out / "runs"
    mdir.mkdir(parents=True, exist_ok=True)
    needed = {s for a in study.arms for s in a.sources}
    parents = {name: _ingest(spec, mdir) for name, spec in study.ingests.items() if name in needed}
    runs: dict[str, Path] = {}
    judge_manifest = None
    for i, arm in enumerate(study.arms):
        log(f"== arm {i + 1}/{len(study.arms)}: {arm.name}")
        manifest = _arm_manifest(arm, parents, mdir)
        if arm.name == study.judge:
            judge_manifest = str(manifest.path.resolve())
        settings = scaled_train_settings(study.train, {**arm.train, **(overrides or {})}, budget, device)
        runs[arm.name] = _train_arm(arm, manifest, settings, rdir / arm.name)
    # One judge for every arm puts all their distances in one feature space (one ruler),
    # so the report may rank the arms against each other.
    audit_cfg = AuditConfig.from_dict({**study.audit, **audit_overrides,
                                       **({"device": device} if device else {}),
                                       **({"judge_manifest": judge_manifest} if judge_manifest else {})})
    intro = study.description + (f" Training steps scaled by --budget {budget:g}." if budget != 1 else "")
    replaced = {**overrides, **{f"audit.{k}": v for k, v in audit_overrides.items()}}
    if replaced:
        intro += " Settings replaced for this run: " \
            + ", ".join(f"{k}={v}" for k, v in replaced.items()) + "."
    report, audits = audit_and_report(list(runs.values()), out / "report.html", config=audit_cfg,
                                      reuse=True, title=study.title, intro=intro.strip(),
                                      labels=list(runs), factors=study.factors or None)
    summary = out / "study.json"
    _write_summary(summary, study, runs, audits, budget, replaced)
    log(f"Study report: {report}")
    return StudyResult(report, summary, runs, dict(zip(runs, audits)))


def _write_summary(path: Path, study: Study, runs: dict[str, Path], audits: list[dict],
                   budget: float, overrides: dict[str, Any]) -> None:
    from datakit.report.run_data import summary_metrics
    arms = []
    for (name, run_dir), audit in zip(runs.items(), audits):
        arms.append({"arm": name, "run_dir": str(run_dir),
                     "summary": {k: v["value"] for k, v in summary_metrics(audit).items()},
                     "collapsed_classes": [c.get("class_name") for c in audit.get("per_class") or []
                                           if c.get("collapsed")]})
    data = {"study": study.name, "title": study.title, "file": str(study.path) if study.path else None,
            "budget": budget, "overrides": overrides, "arms": arms}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)
