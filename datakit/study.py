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

    [[sweep]]                             # arms along one factor (see datakit.sweep)
    name = "mnist"
    from = ["mnist"]
    factor = "size"
    values = [500, 1000, 2000]

    [compare]
    factors = ["images"]                  # run properties the metrics are plotted against
    reference = "1k"                      # one judge and one real image set for every arm:
                                          # an arm's manifest or "union" (default: `judge`,
                                          # an older spelling, else the first arm)
    contrasts = [["1k", "mnist_2000"]]    # arm pairs compared over seeds (datakit.contrasts)
    factor = "size"                       # and/or neighbouring arms along a factor
    class_groups = { a = ["0"], b = ["9"] }  # within-arm contrast of two class groups

    [study] seeds = [0, 1, 2] trains every arm once per seed (runs/<arm>/seed<k>).

Everything already computed is reused: an ingest or composition whose file exists (its name
carries a hash of its inputs and options), a run whose config.json matches and that has its
generated.npz, an audit.json newer than the run's generated.npz; a run with the same settings
and a checkpoint but no generated.npz is resumed from its checkpoint. study.json, curve.csv
and report.html are written by :mod:`datakit.study_results`.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

try:
    import tomllib  # novm: 3.11+, with the tomli fallback below (tests/test_python_minimum.py)
except ModuleNotFoundError:  # Python 3.10: the same parser, as a package
    import tomli as tomllib  # type: ignore[no-redef]

from datakit.errors import DatakitError, StudyError
from datakit.executors import RunTask
from datakit.names import check_name, describe_os_error, inside, printable
from datakit.progress import log
from datakit.typecheck import check_types, dataclass_hints, signature_hints

_STUDY_KEYS = {"name", "title", "description", "seeds", "executor", "jobs", "threads"}
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
    levels: dict[str, Any] = field(default_factory=dict)  # a sweep arm's {sweep, factor, value}


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
    seeds: list[int] = field(default_factory=lambda: [0])
    reference: str | None = None  # an arm name or "union" (default: the judge arm, else the first)
    contrasts: list[tuple[str, str]] = field(default_factory=list)  # (a, b) arm pairs
    contrast_factors: list[str] = field(default_factory=list)  # contrast adjacent arms along these
    class_groups: dict[str, list[str]] = field(default_factory=dict)  # two named class groups
    executor: dict[str, Any] = field(default_factory=dict)  # [study] executor, jobs, threads


@dataclass
class StudyResult:
    """What :func:`run_study` produced: the report, study.json and every run ("ARM/seedK")."""

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
        raise StudyError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; valid keys: "
                         f"{', '.join(sorted(valid))}.")


def _check_fields(d: dict, cls: type, where: str) -> None:
    _check_keys(d, {f.name for f in fields(cls)}, where)
    check_types(d, dataclass_hints(cls), where, StudyError)


def _table(value: Any, where: str) -> dict:
    """A TOML table (dict) or an error naming where one was expected."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise StudyError(f"{where} must be a table (key = value lines), got {value!r}.")
    return dict(value)


def _name(value: Any, what: str, where: str) -> str:
    try:
        return check_name(value, what)
    except DatakitError as e:
        raise StudyError(f"{where}: {e}") from None


def _parse_ingest(iname: str, spec: Any, where: str, base: Path) -> IngestSpec:
    from datakit.ingest import SOURCES, source_function
    iwhere = f"{where} [ingest.{printable(iname)}]"
    _name(iname, "ingest name", iwhere)
    spec = _table(spec, iwhere)
    if "source" not in spec:
        raise StudyError(f"{iwhere} needs a `source` ({', '.join(SOURCES)}).")
    if spec["source"] not in SOURCES:
        raise StudyError(f"{iwhere}: unknown source {spec['source']!r}; use one of {', '.join(SOURCES)}.")
    options = {k: v for k, v in spec.items() if k not in _INGEST_KEYS}
    for k in ("out", "name"):
        if k in options:
            raise StudyError(f"{iwhere}: `{k}` is set by the study runner (manifests go to "
                             "the study's manifests/ folder), not the study file.")
    hints = signature_hints(source_function(spec["source"]), skip=("path", "out", "name"))
    _check_keys(options, set(hints), f"{iwhere} ({spec['source']} options)")
    check_types(options, hints, iwhere, StudyError)
    p = spec.get("path")
    if p is not None and not isinstance(p, str):
        raise StudyError(f"{iwhere}: `path` must be a string, got {p!r}.")
    return IngestSpec(iname, spec["source"], _expand(p, iwhere, base) if p else None, options)


def _check_train(settings: dict[str, Any], where: str) -> None:
    """The merged training settings of an arm must make a valid TrainConfig."""
    from datakit.train import TrainConfig
    try:
        TrainConfig(manifest="", out="", **settings).validate()
    except DatakitError as e:
        raise StudyError(f"{where}: {e}") from None


def _parse_arm(i: int, a: Any, where: str, base: Path, ingests: dict, shared_train: dict) -> ArmSpec:
    from datakit.compose import ComposeConfig
    from datakit.train import TrainConfig
    awhere = f"{where} arm {i + 1}"
    a = _table(a, awhere)
    _check_keys(a, _ARM_KEYS, awhere)
    aname = _name(a.get("name"), "arm name", awhere)
    awhere = f"{awhere} ({aname})"
    srcs = a.get("from") or []
    if not isinstance(srcs, list) or not all(isinstance(x, str) for x in srcs):
        raise StudyError(f"{awhere}: `from` must be a list of ingest names, got {srcs!r}.")
    if bool(srcs) == bool(a.get("manifest")):
        raise StudyError(f"{awhere} needs exactly one of `from` (ingest names) or "
                         "`manifest` (a .parquet path).")
    for x in srcs:
        if x not in ingests:
            raise StudyError(f"{awhere} uses ingest {x!r}, which is not defined; "
                             f"defined: {', '.join(ingests) or 'none'}.")
    compose = _table(a.get("compose"), f"{awhere} compose")
    _check_fields(compose, ComposeConfig, f"{awhere} compose")
    try:
        ComposeConfig(**compose)
    except (DatakitError, ValueError, TypeError) as e:
        raise StudyError(f"{awhere} compose: {e}") from None
    train = _table(a.get("train"), f"{awhere} train")
    _check_fields(train, TrainConfig, f"{awhere} train")
    for k in ("manifest", "out", "resume"):
        if k in train:
            raise StudyError(f"{awhere} train: `{k}` is set by the study runner, not the study file.")
    if "seed" in train:
        raise StudyError(f"{awhere} train: `seed` is set by the study runner; list seeds in "
                         "[study] seeds.")
    _check_train({**shared_train, **train}, awhere)
    manifest = a.get("manifest")
    if manifest is not None and not isinstance(manifest, str):
        raise StudyError(f"{awhere}: `manifest` must be a path string, got {manifest!r}.")
    return ArmSpec(aname, list(srcs), _expand(manifest, awhere, base) if manifest else None,
                   compose, train)


def parse_study(data: dict[str, Any], *, path: Path | None = None) -> Study:
    """Check a study's dictionary (as read from TOML) completely and return a :class:`Study`.

    Every key, type, range and name is checked here, before any work starts.
    """
    from datakit.audit import AuditConfig
    from datakit.train import TrainConfig

    where = str(path) if path else "the study"
    base = path.parent if path else Path.cwd()
    _check_keys(data, {"study", "ingest", "train", "audit", "arm", "sweep", "compare"}, where)
    head = _table(data.get("study"), f"{where} [study]")
    _check_keys(head, _STUDY_KEYS, f"{where} [study]")
    check_types(head, {"name": str, "title": str, "description": str, "seeds": list},
                f"{where} [study]", StudyError)
    name = _name(head.get("name") or (path.stem if path else "study"), "study name", f"{where} [study]")

    ingests = {iname: _parse_ingest(iname, spec, where, base)
               for iname, spec in _table(data.get("ingest"), f"{where} [ingest]").items()}

    shared_train = _table(data.get("train"), f"{where} [train]")
    _check_fields(shared_train, TrainConfig, f"{where} [train]")
    for k in ("manifest", "out", "resume", "seed"):
        if k in shared_train:
            raise StudyError(f"{where} [train]: `{k}` is set by the study runner, not the study "
                             "file" + (" (list seeds in [study] seeds)." if k == "seed" else "."))
    _check_train(shared_train, f"{where} [train]")
    audit = _table(data.get("audit"), f"{where} [audit]")
    _check_fields(audit, AuditConfig, f"{where} [audit]")

    from datakit.sweep import expand_sweeps
    raw_arms = data.get("arm") or []
    if not isinstance(raw_arms, list):
        raise StudyError(f"{where}: `arm` must be a list of [[arm]] tables.")
    swept, levels = expand_sweeps(data.get("sweep") or [], where)
    raw_arms = list(raw_arms) + swept
    if not raw_arms:
        raise StudyError(f"{where} names no arms; add [[arm]] tables with a name and `from` or "
                         "`manifest`, or a [[sweep]].")
    arms: list[ArmSpec] = []
    for i, a in enumerate(raw_arms):
        arm = _parse_arm(i, a, where, base, ingests, shared_train)
        if arm.name in {x.name for x in arms}:
            raise StudyError(f"{where}: two arms are named {arm.name!r}; arm names must be unique.")
        arm.levels = levels.get(arm.name, {})
        arms.append(arm)

    compare = _table(data.get("compare"), f"{where} [compare]")
    _check_keys(compare, {"factors", "judge", "reference", "contrasts", "factor", "class_groups"},
                f"{where} [compare]")
    check_types(compare, {"factors": list, "judge": str, "reference": str, "contrasts": list,
                          "factor": str, "class_groups": dict}, f"{where} [compare]", StudyError)
    factors = list(compare.get("factors") or [])
    bad = [f for f in factors if f not in FACTORS]
    if bad:
        raise StudyError(f"{where} [compare]: unknown factor(s) {', '.join(map(str, bad))}; "
                         f"use {', '.join(FACTORS)}.")
    judge = compare.get("judge")
    if judge is not None and judge not in {a.name for a in arms}:
        raise StudyError(f"{where} [compare]: judge = {judge!r} is not an arm; use one of: "
                         f"{', '.join(a.name for a in arms)}.")
    study = Study(name, str(head.get("title") or name), str(head.get("description") or ""),
                  ingests, arms, shared_train, audit, factors, path, judge)
    study.seeds = _parse_seeds(head, where)
    study.executor = _parse_executor(head, where)
    _parse_reference_and_contrasts(study, compare, where)
    return study


# -- reading seeds, the reference and contrasts (issue 10) -------------------------------------

def _parse_seeds(head: dict[str, Any], where: str) -> list[int]:
    """[study] seeds: distinct integers, each arm trained once per seed (default [0])."""
    seeds = head.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds \
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds) \
            or len(set(seeds)) != len(seeds):
        raise StudyError(f"{where} [study]: seeds must be a list of distinct non-negative "
                         f"integers, e.g. seeds = [0, 1, 2]; got {seeds!r}.")
    return list(seeds)


def _parse_executor(head: dict[str, Any], where: str) -> dict[str, Any]:
    """[study] executor ("local" or "ray"), jobs and threads (see datakit.executors)."""
    from datakit.executors import EXECUTORS
    out = {k: head[k] for k in ("executor", "jobs", "threads") if k in head}
    if out.get("executor", "local") not in EXECUTORS:
        raise StudyError(f"{where} [study]: executor = {out['executor']!r} is not one of "
                         f"{', '.join(EXECUTORS)}.")
    for k in ("jobs", "threads"):
        if k in out and not (isinstance(out[k], int) and out[k] >= (1 if k == "jobs" else 0)):
            raise StudyError(f"{where} [study]: {k} must be an integer of at least "
                             f"{1 if k == 'jobs' else 0}, got {out[k]!r}.")
    return out


def _parse_reference_and_contrasts(study: Study, compare: dict[str, Any], where: str) -> None:
    """[compare] reference, contrasts and factor: checked against the study's arms."""
    names = [a.name for a in study.arms]
    ref = compare.get("reference")
    if ref is not None and ref != "union" and ref not in names:
        raise StudyError(f"{where} [compare]: reference = {ref!r} is neither an arm nor "
                         f"\"union\"; use one of: {', '.join(names)}, union.")
    if ref is not None and study.judge is not None and ref != study.judge:
        raise StudyError(f"{where} [compare]: judge = {study.judge!r} and reference = {ref!r} "
                         "differ; every arm is measured with one judge trained on the reference, "
                         "so give only `reference`.")
    study.reference = ref or study.judge or names[0]
    pairs = compare.get("contrasts") or []
    for p in pairs:
        if not (isinstance(p, list) and len(p) == 2 and all(x in names for x in p)) or p[0] == p[1]:
            raise StudyError(f"{where} [compare]: contrast {p!r} must be a pair of two different "
                             f"arms, e.g. [\"{names[0]}\", \"{names[-1]}\"]; arms: {', '.join(names)}.")
    study.contrasts = [(a, b) for a, b in pairs]
    factor = compare.get("factor") or []
    factor = [factor] if isinstance(factor, str) else list(factor)
    valid = set(FACTORS) | {a.levels["factor"] for a in study.arms if a.levels}
    bad = [f for f in factor if f not in valid]
    if bad:
        raise StudyError(f"{where} [compare]: factor {', '.join(map(repr, bad))} is not a "
                         f"factor of this study; use one of: {', '.join(sorted(valid))}.")
    study.contrast_factors = factor
    groups = compare.get("class_groups") or {}
    if groups and not (isinstance(groups, dict) and len(groups) == 2 and all(
            isinstance(v, list) and v and all(isinstance(c, str) for c in v)
            for v in groups.values())):
        raise StudyError(f"{where} [compare]: class_groups must name two groups of class names, "
                         "e.g. class_groups = { majority = [\"0\", \"1\"], minority = [\"5\", \"6\"] }.")
    study.class_groups = {k: list(v) for k, v in groups.items()}


def load_study(path: str | os.PathLike) -> Study:
    """Read and check a study file (TOML)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudyError(f"Study file {path} not found. Pass one of the files in audits/ "
                         "(e.g. audits/mnist_size.toml).") from None
    except tomllib.TOMLDecodeError as e:
        raise StudyError(f"Study file {path} is not valid TOML ({e}).") from e
    except UnicodeDecodeError:
        raise StudyError(f"Study file {path} is not UTF-8 text; save it as UTF-8 TOML.") from None
    except OSError as e:
        raise StudyError(f"Cannot read study file {path} ({describe_os_error(e)}).") from None
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
    out = inside(folder, folder / f"{spec.name}-{_digest([spec.source, where, spec.options])}.parquet",
                 "ingest manifest")
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
    out = inside(folder, folder / f"{arm.name}-{_digest([[m.checksum for m in ms], arm.compose])}.parquet",
                 "composed manifest")
    return _reuse_or_make(out, f"compose {arm.name}", f"from {', '.join(arm.sources)}",
                          lambda: compose(ms, out, **arm.compose))


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
    from datakit.train.config import DEFAULT_STEPS
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
    return all(cfg.get(k) == v for k, v in settings.items() if k not in ignore and k in cfg)


def _remove_stale_run(run_dir: Path) -> None:
    """Delete ``run_dir`` only if datakit made it (its marker file says so); else refuse.

    A folder without the marker may be the user's own (notes, another tool's run): it is
    never deleted. An empty folder is left for the trainer to fill.
    """
    from datakit.train.rundir import MARKER
    if run_dir.is_symlink() or not run_dir.is_dir():
        raise StudyError(f"{run_dir} is in the way of the run folder and was not made by "
                         "datakit; move it away, or pass another --out.")
    if not any(run_dir.iterdir()):
        return
    if not (run_dir / MARKER).is_file():
        raise StudyError(f"{run_dir} holds files that datakit did not write (no {MARKER} "
                         "marker), so it was left alone; move them away, or pass another --out.")
    log(f"[train] {run_dir} holds a different or unfinished run: replacing it")
    try:
        shutil.rmtree(run_dir)
    except OSError as e:
        raise StudyError(f"Cannot remove the stale run {run_dir} ({describe_os_error(e)}); "
                         "remove it by hand.") from e


def train_run(name: str, manifest, settings: dict[str, Any], run_dir: Path) -> Path:
    """Train run ``name`` ("ARM/seedK") into ``run_dir``: reuse a finished run with the same
    manifest and settings, resume an unfinished one from its checkpoint, else start over."""
    from datakit.train import TrainConfig, train
    what = f"train {name}"
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
              device: str | None = None, overrides: dict[str, Any] | None = None,
              executor: str | None = None, jobs: int | None = None,
              threads: int | None = None) -> StudyResult:
    """Run every arm of ``study`` once per seed (ingest → compose → train → audit), compare
    the arms with contrasts, and write ``report.html``, ``study.json`` (and ``curve.csv``
    for sweeps) in the study folder.

    The ingests and compositions the runs need, and the shared judge, are made first, here;
    then every run (arm × seed: train + audit) is one task of the executor
    (:mod:`datakit.executors`), which gives the same runs and numbers in any executor.

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
    from datakit.executors import ExecutorConfig, execute, require_ray, write_token
    from datakit.study_results import write_study_outputs

    check_budget(budget)  # before any work starts
    train_overrides, audit_overrides = _split_overrides(overrides)
    chosen = {"name": executor, "jobs": jobs, "threads": threads}
    spec = {"name": study.executor.get("executor", "local"), "jobs": study.executor.get("jobs", 1),
            "threads": study.executor.get("threads", 0),
            **{k: v for k, v in chosen.items() if v is not None}}
    plan = ExecutorConfig(**spec)
    plan.validate()
    if plan.name == "ray":
        require_ray()  # before any work
    out = Path(out) if out is not None else Path("studies") / study.name
    mdir, rdir = out / "manifests", out / "runs"
    mdir.mkdir(parents=True, exist_ok=True)

    # 1) the data every run reads: ingests, compositions and the reference, made once
    manifests, reference = _prepare_manifests(study, mdir)
    # 2) the shared judge, trained once into the cache every task reads
    audit_cfg = _audit_config(study.audit, audit_overrides, device, reference.path)
    cache = _judge_cache(out)
    _train_shared_judge(reference, audit_cfg, cache)
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
                _trains_on_cuda(settings.get("device", "auto"))))
    log(f"== {len(tasks)} runs ({len(study.arms)} arms × {len(study.seeds)} seeds), executor "
        f"{plan.name}" + (f", {plan.jobs} at once" if plan.jobs > 1 else "")
        + f", {plan.threads_per_run()} threads each")
    audits = [o.audit for o in execute(tasks, plan)]
    # 4) study.json, curve.csv and the report
    replaced = {**train_overrides, **{f"audit.{k}": v for k, v in audit_overrides.items()}}
    report, summary = write_study_outputs(study, out, runs, audits, manifests, reference,
                                          budget=budget, overrides=replaced,
                                          executor=plan.record())
    log(f"Study report: {report}")
    return StudyResult(report, summary, {f"{a}/seed{s}": p for (a, s), p in runs.items()},
                       {f"{a}/seed{s}": au for (a, s), au in zip(runs, audits)})


def _prepare_manifests(study: Study, folder: Path) -> tuple[dict[str, Any], "Reference"]:
    """Every arm's manifest (ingested and composed once, or reused) and the reference."""
    needed = {s for a in study.arms for s in a.sources}
    parents = {name: _ingest(spec, folder) for name, spec in study.ingests.items() if name in needed}
    manifests = {arm.name: _arm_manifest(arm, parents, folder) for arm in study.arms}
    return manifests, _reference_manifest(study, manifests, folder)


def _judge_cache(out: Path) -> Path:
    """The judge cache of a study's tasks: DATAKIT_CACHE when set, else ``<study>/cache``
    (a folder every worker sees, since the study folder must be shared)."""
    root = os.environ.get("DATAKIT_CACHE")
    return Path(root).resolve() if root else (out / "cache").resolve()


def _train_shared_judge(reference: "Reference", audit_cfg, cache: Path) -> None:
    """Train (or find cached) the reference's judge once, before the runs, as each audit
    would (same settings, same cache key), so that every task only loads it."""
    from datakit.audit.judge import JudgeConfig, judge_for_manifest, resolve_device
    from datakit.executors import _judge_cache as cache_env
    from datakit.manifest import read_manifest

    if not audit_cfg.use_cache:
        return  # every audit trains its own judge
    import torch
    # A Ray driver may have no GPU while its workers do: the judge then trains on the CPU
    # here (the cache key does not depend on the device), and every audit loads that one.
    device = "auto" if audit_cfg.device.startswith("cuda") and not torch.cuda.is_available() \
        else audit_cfg.device
    judge_cfg = JudgeConfig(**{**audit_cfg.judge.__dict__, "device": str(resolve_device(device))})
    with cache_env(str(cache)):
        judge_for_manifest(read_manifest(reference.path), judge_cfg, use_cache=True)


def _trains_on_cuda(device: str) -> bool:
    """Whether a run with this --device trains on a GPU (auto: when this machine has one)."""
    if device == "cuda":
        return True
    if device != "auto":
        return False
    import torch
    return torch.cuda.is_available()


def _split_overrides(overrides: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """--set values as (training settings, audit settings), checked before any work."""
    from datakit.audit import AuditConfig
    from datakit.train import TrainConfig

    overrides = dict(overrides or {})
    audit_overrides = {k[len("audit."):]: overrides.pop(k) for k in list(overrides)
                       if k.startswith("audit.")}
    _check_fields(audit_overrides, AuditConfig, "--set audit.NAME")
    if overrides:
        _check_fields(overrides, TrainConfig, "--set")
        for k in ("manifest", "out", "resume", "seed"):
            if k in overrides:
                raise StudyError(f"--set {k} is not allowed: the study runner sets it.")
    return overrides, audit_overrides


@dataclass
class Reference:
    """The one real image set (and judge) every arm is measured against."""

    name: str          # an arm name, or "union"
    path: Path         # its manifest (.parquet)
    checksum: str


def _reference_manifest(study: Study, manifests: dict[str, Any], folder: Path) -> Reference:
    """The reference manifest: a named arm's, or the union of every arm's (composed once,
    exact duplicates dropped, so an image shared by several arms counts once)."""
    from datakit.compose import compose

    if study.reference != "union":
        m = manifests[study.reference]
        return Reference(study.reference, Path(m.path), m.checksum)
    ms = list({m.checksum: m for m in manifests.values()}.values())
    out = folder / f"union-{_digest(sorted(m.checksum for m in ms))}.parquet"
    m = _reuse_or_make(out, "compose union", f"the union of {len(ms)} arm manifests",
                       lambda: compose(ms, out, dedupe="exact"))
    return Reference("union", Path(m.path), m.checksum)


def _audit_config(audit: dict[str, Any], overrides: dict[str, Any], device: str | None,
                  reference: Path):
    """The study's AuditConfig: one judge and one real image set (the reference) for every run.

    ``AuditConfig.reference_manifest`` is being added by the audit rewrite (issue 9); until it
    lands only the judge is shared and each run's quality is compared with its own real images.
    """
    from datakit.audit import AuditConfig

    settings = {**audit, **overrides, **({"device": device} if device else {}),
                "judge_manifest": str(Path(reference).resolve())}
    if "reference_manifest" in AuditConfig.__dataclass_fields__:
        settings["reference_manifest"] = settings["judge_manifest"]
    else:
        log("Note: this audit has no reference_manifest yet; every run is measured by the "
            "reference's judge against its own real images.")
    return AuditConfig.from_dict(settings)
