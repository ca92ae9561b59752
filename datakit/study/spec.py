"""Audit studies: declarative TOML files that run ingest → compose → train → audit for several
training sets ("arms") and write one comparison report.

A study file (see ``audits/*.toml``)::

    [study]
    name = "mnist_size"
    title = "MNIST at 1k, 5k and 60k images"
    description = "Does a larger training set give a better generator?"

    [ingest.mnist]                        # named ingests, shared by the arms
    source = "mnist"                      # no `path`: the files in DATA_HOME/mnist (datakit.sources.home)
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

    [[sweep]]                             # arms along one factor (see datakit.study.sweep)
    name = "mnist"
    from = ["mnist"]
    factor = "size"
    values = [500, 1000, 2000]

    [compare]
    factors = ["images"]                  # run properties the metrics are plotted against
    reference = "1k"                      # one judge and one real image set for every arm:
                                          # an arm's manifest or "union" (default: `judge`,
                                          # an older spelling, else the first arm)
    target = "wild"                       # the domain realism is measured against: the
                                          # reference's images of it (datakit.study.target)
    contrasts = [["1k", "mnist_2000"]]    # arm pairs compared over seeds (datakit.study.contrasts)
    factor = "size"                       # and/or neighbouring arms along a factor
    class_groups = { a = ["0"], b = ["9"] }  # within-arm contrast of two class groups

    [study] seeds = [0, 1, 2] trains every arm once per seed (runs/<arm>/seed<k>).

Everything already computed is reused: an ingest or composition whose file exists (its name
carries a hash of its inputs and options), a run whose config.json matches and that has its
generated.npz, an audit.json newer than the run's generated.npz; a run with the same settings
and a checkpoint but no generated.npz is resumed from its checkpoint. study.json, curve.csv
and report.html are written by :mod:`datakit.study.results`.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

try:
    import tomllib  # novm: 3.11+, with the tomli fallback below (tests/test_python_minimum.py)
except ModuleNotFoundError:  # Python 3.10: the same parser, as a package
    import tomli as tomllib  # type: ignore[no-redef]
from datakit._core.names import check_name, describe_os_error, printable
from datakit._core.typecheck import MAX_SEED, check_types, dataclass_hints, signature_hints
from datakit.audit import AuditConfig
from datakit.composition.config import ComposeConfig
from datakit.errors import DatakitError, StudyError
from datakit.sources.registry import SOURCES, source_function
from datakit.study.sweep import expand_sweeps
from datakit.study.target import parse_target
from datakit.training import TrainConfig

_STUDY_KEYS = {"name", "title", "description", "seeds", "executor", "jobs", "threads"}
_ARM_KEYS = {"name", "from", "manifest", "compose", "train"}
_INGEST_KEYS = {"source", "path"}

#: Where a study's runs execute (:mod:`datakit.study.executors`).
EXECUTORS = ("local", "ray")
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
    target: dict[str, float] | None = None  # [compare] target: {domain: share} (datakit.study.target)
    executor: dict[str, Any] = field(default_factory=dict)  # [study] executor, jobs, threads


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


def _check_audit(settings: dict[str, Any], where: str) -> None:
    """[audit] (or --set audit.NAME) must make a valid AuditConfig: ranges, the judge's
    table, the device's spelling, all checked before any ingest or training."""
    try:
        AuditConfig.from_dict(settings)
    except DatakitError as e:
        raise StudyError(f"{where}: {e}") from None


def _check_train(settings: dict[str, Any], where: str) -> None:
    """The merged training settings of an arm must make a valid TrainConfig."""
    try:
        TrainConfig(manifest="", out="", **settings).validate()
    except DatakitError as e:
        raise StudyError(f"{where}: {e}") from None


def _parse_arm(i: int, a: Any, where: str, base: Path, ingests: dict, shared_train: dict) -> ArmSpec:
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
    _check_audit(audit, f"{where} [audit]")

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
    _check_keys(compare, {"factors", "judge", "reference", "contrasts", "factor", "class_groups",
                          "target"}, f"{where} [compare]")
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
    study.target = parse_target(compare.get("target"), where)
    return study


def _parse_seeds(head: dict[str, Any], where: str) -> list[int]:
    """[study] seeds: distinct integers, each arm trained once per seed (default [0])."""
    seeds = head.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds \
            or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_SEED
                       for s in seeds) \
            or len(set(seeds)) != len(seeds):
        raise StudyError(f"{where} [study]: seeds must be a list of distinct integers from 0 "
                         f"to {MAX_SEED}, e.g. seeds = [0, 1, 2]; got {seeds!r}.")
    return list(seeds)


def _parse_executor(head: dict[str, Any], where: str) -> dict[str, Any]:
    """[study] executor ("local" or "ray"), jobs and threads (see datakit.study.executors)."""
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
        # The example studies (audits/*.toml) live in the source repository, not in the package.
        raise StudyError(f"Study file {path} not found. Pass the path of a study file (TOML; its "
                         "format is in the docs, docs/studies.md, with examples in the source "
                         "repository's audits/ folder), or run `datakit demo` for the built-in "
                         "study on embedded data.") from None
    except tomllib.TOMLDecodeError as e:
        raise StudyError(f"Study file {path} is not valid TOML ({e}).") from e
    except UnicodeDecodeError:
        raise StudyError(f"Study file {path} is not UTF-8 text; save it as UTF-8 TOML.") from None
    except RecursionError:
        raise StudyError(f"Study file {path} nests tables or arrays too deeply to read; a study "
                         "needs a few levels at most (see audits/*.toml).") from None
    except OSError as e:
        raise StudyError(f"Cannot read study file {path} ({describe_os_error(e)}).") from None
    return parse_study(data, path=path)


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
        except RecursionError:
            raise StudyError(f"Bad --set {key}: its value nests arrays or tables too deeply; "
                             "give a plain value, e.g. --set width=16.") from None
    return out


def split_overrides(overrides: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """--set values as (training settings, audit settings), checked before any work."""

    overrides = dict(overrides or {})
    audit_overrides = {k[len("audit."):]: overrides.pop(k) for k in list(overrides)
                       if k.startswith("audit.")}
    _check_fields(audit_overrides, AuditConfig, "--set audit.NAME")
    _check_audit(audit_overrides, "--set audit.NAME")
    if overrides:
        _check_fields(overrides, TrainConfig, "--set")
        for k in ("manifest", "out", "resume", "seed"):
            if k in overrides:
                raise StudyError(f"--set {k} is not allowed: the study runner sets it.")
    return overrides, audit_overrides
