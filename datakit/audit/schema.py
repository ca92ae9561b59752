"""The one definition of ``audit.json``: its version, its typed parts, and how it is written and read.

The audit writes this shape (:func:`write_audit`) and the report reads it typed
(:func:`read_audit` returns an :class:`Audit`); no other spelling of any key exists.
Top-level keys, in order (the fields of :class:`Audit`):

- ``schema_version`` (int, :data:`SCHEMA_VERSION`)
- ``run``: the run audited (run_dir, model, conditional, manifest, checksum, counts, version)
- ``reference``: the real images every quality metric compares against (:class:`Reference`)
- ``judge``: the measuring network (held-out accuracy, trust, vocabularies, manifest,
  and ``confusion``: :class:`Confusion`)
- ``summary``: whole-set metrics by name, each a :class:`Metric`
- ``per_class``: one :class:`ClassRow` per class
- ``findings``: the verdict, a list of :class:`Finding`, sorted fail > warn > info
- ``checks``: per check, ``{"score": float|None, "score_name": str, "findings": int}``
- ``amplification``: class shares, training vs generated (``{"classes": share table}``)
- ``domains``: domain shares and per-part metrics of a mixed manifest, or None
- ``composition``: class-count skew, minority vs majority comparisons, count correlations
- ``memorisation``, ``cas``, ``warnings`` (sentences), ``samples``, ``config``, ``timing``
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

import datakit.audit.declare as declare
from datakit._core.atomic import atomic_write_text
from datakit._core.typecheck import key_mismatch
from datakit.errors import DatakitError

#: Bumped whenever a key changes meaning or disappears; the report refuses other versions.
SCHEMA_VERSION = 3

#: Severities of a finding, most severe first: ``fail`` is a defect the user must act on.
SEVERITIES = ("fail", "warn", "info")

TOP_KEYS = ("schema_version", "run", "reference", "judge", "summary", "per_class", "verdict", "findings",
            "checks", "amplification", "domains", "composition", "memorisation", "cas",
            "warnings", "samples", "config", "timing")


class AuditSchemaError(DatakitError):
    """An audit.json is of another schema version or does not have the shape this one defines."""


@dataclass
class Finding:
    """One sentence of the verdict, with the check that produced it and its numbers.

    Attributes:
        check: the registered check's name (e.g. ``label_fidelity``, ``shares``).
        severity: ``fail`` (a defect to act on), ``warn`` or ``info``.
        classes: class names it concerns (empty for whole-run findings).
        sentence: what the report prints.
        evidence: the numbers behind it (value, floor, ci_low, ci_high, ...).
    """

    check: str
    severity: str
    classes: list[str]
    sentence: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise AuditSchemaError(f"Finding of check {self.check!r} has severity {self.severity!r}; "
                                   f"valid severities: {', '.join(SEVERITIES)}.")


@dataclass
class Metric:
    """A whole-set metric beside its real-vs-real floor (held-out real images at the same size).

    ``ci_low``/``ci_high``: 95% bootstrap interval of the value at ``sample_size``;
    ``better``: ``lower`` or ``higher``; ``ideal``: the best possible value;
    ``fd_infinity``: for ``fd`` only (else None), the bias-corrected FD∞ (Chong & Forsyth
    2020) of all generated samples: {value, ci_low, ci_high, se, sizes, fd_at_sizes}.
    """

    value: float | None
    floor: float | None
    ci_low: float | None
    ci_high: float | None
    better: str
    ideal: float
    sample_size: int
    fd_infinity: dict[str, Any] | None = None


@dataclass
class FloorTest:
    """One per-class metric against its floor, decided by an interval.

    ``difference`` is value - floor (share: generated/expected share - 1); ``ci_low``/
    ``ci_high`` its bootstrap interval over generated and held-out images, both at
    ``sample_size`` when the metric depends on it. ``worse``: the interval excludes 0 in the
    bad direction and the difference is at least ``min_effect`` in that direction.
    """

    value: float | None
    floor: float | None
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    sample_size: int
    min_effect: float
    better: str
    worse: bool


#: A per-class row's keys before its metrics, and after them (audit.json keeps this order).
ROW_IDENTITY = ("class_name", "label", "train_count", "train_share", "reference_count", "held_out_count",
                "generated_count")
ROW_DECISIONS = ("collapsed", "collapse_evidence", "failed", "failure_reasons", "vs_floor", "untested",
                 "standout")


@dataclass
class ClassRow:
    """One class of the run: every per-class metric beside its floor, and the decisions.

    ``metrics`` holds the per-class keys the registered checks declare
    (:func:`datakit.audit.declare.row_keys`: values and floors, in order); in audit.json they
    sit flat in the row, between the identity fields and the decisions (:meth:`to_dict`).
    """

    class_name: str
    label: int
    train_count: int
    train_share: float
    reference_count: int
    held_out_count: int
    generated_count: int
    metrics: dict[str, float | int | None]
    collapsed: bool
    collapse_evidence: str
    failed: bool
    failure_reasons: list[str]
    vs_floor: dict[str, FloorTest]   # floor test name -> its test
    untested: str = ""         # "untested (n = 21 held-out; 30 needed)", or "" (datakit.audit.verdict)
    standout: dict[str, Any] = field(default_factory=dict)  # floor test -> datakit.audit.stats.standout.Standout's dict

    def __post_init__(self):
        keys = declare.row_keys()
        missing = [k for k in keys if k not in self.metrics]
        unknown = [k for k in self.metrics if k not in keys]
        if missing or unknown:
            raise AuditSchemaError(f"Per-class row of class {self.class_name!r} does not match the "
                                   "registered checks' metrics"
                                   f"{'; missing ' + ', '.join(missing) if missing else ''}"
                                   f"{'; undeclared ' + ', '.join(unknown) if unknown else ''}.")
        self.metrics = {k: self.metrics[k] for k in keys}

    def to_dict(self) -> dict[str, Any]:
        """The row as audit.json holds it: identity, metrics, decisions, flat."""
        return {**{k: getattr(self, k) for k in ROW_IDENTITY}, **self.metrics,
                **{k: getattr(self, k) for k in ROW_DECISIONS}}

    @classmethod
    def from_dict(cls, d: Any, where: str) -> "ClassRow":
        """A row of audit.json, checked against this schema and the registered metrics."""
        if not isinstance(d, dict):
            raise AuditSchemaError(f"{where} should be an object, got {type(d).__name__}.")
        fixed = ROW_IDENTITY + ROW_DECISIONS
        keys = declare.row_keys()
        # A metric of a check registered after this audit was written reads as None (not
        # measured): re-auditing fills it. Identity and decisions must be there.
        mismatch = key_mismatch(d, fixed, (*fixed, *keys))
        if mismatch:
            raise AuditSchemaError(f"{where} does not match audit schema {SCHEMA_VERSION}{mismatch}.")
        row = {k: d[k] for k in fixed}
        vs_floor = row["vs_floor"]
        if not isinstance(vs_floor, dict):
            raise AuditSchemaError(f"{where}.vs_floor should be an object, got {type(vs_floor).__name__}.")
        row["vs_floor"] = {name: _construct(FloorTest, t, f"{where}.vs_floor.{name}")
                           for name, t in vs_floor.items()}
        return cls(**row, metrics={k: d.get(k) for k in keys})

    def __getitem__(self, key: str) -> Any:
        """A field or a declared metric by its audit.json key."""
        if key in self.metrics:
            return self.metrics[key]
        if key in ROW_IDENTITY or key in ROW_DECISIONS:
            return getattr(self, key)
        raise KeyError(key)


@dataclass
class Confusion:
    """Judge confusion matrices over the run's classes: rows = true / conditioning label,
    columns = the judge's reading (counts). ``generated`` is None for unconditional runs."""

    classes: list[str]
    held_out: list[list[int]]
    generated: list[list[int]] | None


@dataclass
class Reference:
    """The real images quality is measured against: a manifest's training split (reference)
    and its held-out split (floors). ``manifest`` is relative to the audit file when possible."""

    manifest: str
    checksum: str
    own: bool                 # the run's own training manifest
    reference_count: int
    held_out_count: int
    held_out_source: str


def _clean(o: Any) -> Any:
    """JSON-safe: dataclasses -> dicts, NaN/inf -> None, numpy scalars/arrays -> Python."""
    if isinstance(o, ClassRow):
        return _clean(o.to_dict())
    if is_dataclass(o) and not isinstance(o, type):
        return _clean(asdict(o))
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, np.ndarray):
        return _clean(o.tolist())
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, (float, np.floating)):
        return None if not math.isfinite(float(o)) else float(o)
    if isinstance(o, Path):
        return str(o)
    return o


def _construct(cls, d: Any, where: str):
    if not isinstance(d, dict):
        raise AuditSchemaError(f"{where} should be an object, got {type(d).__name__}.")
    mismatch = key_mismatch(sorted(d), sorted(f.name for f in fields(cls)))
    if mismatch:
        raise AuditSchemaError(f"{where} does not match audit schema {SCHEMA_VERSION}{mismatch}.")
    return cls(**d)


def validate_audit(audit: dict[str, Any], where: str = "audit") -> dict[str, Any]:
    """Check ``audit`` has exactly this schema's shape; return it unchanged."""
    version = audit.get("schema_version") if isinstance(audit, dict) else None
    if version != SCHEMA_VERSION:
        raise AuditSchemaError(
            f"{where} has audit schema version {version!r}, but this datakit reads version "
            f"{SCHEMA_VERSION}; re-run `datakit audit` on the run to rewrite it.")
    mismatch = key_mismatch(audit, TOP_KEYS)
    if mismatch:
        raise AuditSchemaError(f"{where} does not match audit schema {SCHEMA_VERSION}{mismatch}. "
                               "Re-run `datakit audit` on the run.")
    for name, m in audit["summary"].items():
        _construct(Metric, m, f"{where}: summary.{name}")
    for i, row in enumerate(audit["per_class"]):
        r = ClassRow.from_dict(row, f"{where}: per_class[{i}]")
        reasons = declare.failure_reasons()
        bad = [x for x in r.failure_reasons if x not in reasons]
        if bad:
            raise AuditSchemaError(f"{where}: per_class[{i}] has failure reason(s) {', '.join(bad)}; "
                                   f"valid reasons: {', '.join(reasons)}.")
        tests = declare.floor_tests()
        bad = [x for x in r.vs_floor if x not in tests]
        if bad:
            raise AuditSchemaError(f"{where}: per_class[{i}] has floor test(s) {', '.join(bad)} no "
                                   f"registered check declares; declared: {', '.join(tests)}.")
    order = []
    for i, f in enumerate(audit["findings"]):
        order.append(SEVERITIES.index(_construct(Finding, f, f"{where}: findings[{i}]").severity))
    if order != sorted(order):
        raise AuditSchemaError(f"{where}: findings are not sorted by severity (fail, warn, info).")
    _construct(Reference, audit["reference"], f"{where}: reference")
    _construct(Confusion, (audit["judge"] or {}).get("confusion"), f"{where}: judge.confusion")
    return audit


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Findings ordered fail > warn > info, keeping each check's order within a severity."""
    return sorted(findings, key=lambda f: SEVERITIES.index(f.severity))


def prepare_audit(audit: dict[str, Any], where: str = "audit") -> dict[str, Any]:
    """``audit`` (with dataclass parts) as the plain JSON-safe dict audit.json holds, validated."""
    return validate_audit(_clean(audit), where)


def write_audit(path: str | os.PathLike, audit: dict[str, Any]) -> dict[str, Any]:
    """Make ``audit`` JSON-safe, validate it, and write it atomically; return what was written."""
    path = Path(path)
    data = prepare_audit(audit, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False))
    return data


def read_audit(path: str | os.PathLike) -> "Audit":
    """Read and validate an audit.json written by :func:`write_audit`, typed."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise AuditSchemaError(f"{path} is missing; run `datakit audit` on the run first.") from None
    except (OSError, ValueError) as e:
        raise AuditSchemaError(f"{path} cannot be read as JSON ({e}); re-run `datakit audit`.") from e
    return Audit.from_dict(data, str(path))


@dataclass
class Verdict:
    """The verdict's first line (:func:`datakit.audit.verdict.summary_sentence`): how far the
    run is from real data, which classes stand out (failed or collapsed), which are untested."""

    sentence: str
    stand_out: list[str]
    untested: list[str]


@dataclass(frozen=True)
class Audit:
    """An audit.json, read: one field per top-level section, in the file's order.

    The sections the schema types are typed (:class:`Reference`, :class:`Metric`,
    :class:`ClassRow` with its :class:`FloorTest` s, :class:`Finding`; the judge's
    :class:`Confusion` via :attr:`confusion`); the open sections (the run, the judge's
    description, shares, domains, composition, memorisation, CAS, samples, settings,
    timing) are the dictionaries audit.json holds. :meth:`to_dict` gives back the dict
    audit.json holds (what :func:`write_audit` wrote).
    """

    schema_version: int
    run: dict[str, Any]
    reference: Reference
    judge: dict[str, Any]
    summary: dict[str, Metric]
    per_class: list[ClassRow]
    verdict: Verdict
    findings: list[Finding]
    checks: dict[str, dict[str, Any]]
    amplification: dict[str, Any] | None
    domains: dict[str, Any] | None
    composition: dict[str, Any] | None
    memorisation: dict[str, Any] | None
    cas: dict[str, Any] | None
    warnings: list[str]
    samples: dict[str, Any] | None
    config: dict[str, Any] | None
    timing: dict[str, Any] | None

    @property
    def confusion(self) -> Confusion:
        """The judge's confusion matrices over the run's classes."""
        return Confusion(**self.judge["confusion"])

    @classmethod
    def from_dict(cls, data: Any, where: str = "audit") -> "Audit":
        """An audit.json's object, validated (:func:`validate_audit`) and typed."""
        validate_audit(data, where)
        return cls(**{**data,
                      "reference": Reference(**data["reference"]),
                      "summary": {k: Metric(**m) for k, m in data["summary"].items()},
                      "per_class": [ClassRow.from_dict(r, f"{where}: per_class[{i}]")
                                    for i, r in enumerate(data["per_class"])],
                      "verdict": Verdict(**data["verdict"]),
                      "findings": [Finding(**f) for f in data["findings"]]})

    def to_dict(self) -> dict[str, Any]:
        """The audit as audit.json holds it (plain JSON values, keys in the file's order)."""
        return _clean({k: getattr(self, k) for k in TOP_KEYS})


if tuple(f.name for f in fields(Audit)) != TOP_KEYS:  # one list of sections, in one order
    raise AssertionError("Audit's fields are not audit.json's TOP_KEYS")
