"""The audit's computation: shared features, then every registered check, then audit.json's dict.

The verdict (:mod:`datakit.audit.verdict`) reads the checks' floor tests: how far the run is
from real data (run-level findings) and which classes stand out from the others (class
findings, and each row's ``collapsed``/``failed``). Its sentences are built from the same
numbers the per-class table shows, so the two cannot disagree.
"""
from __future__ import annotations

import datetime as _dt
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

import datakit.audit.declare as declare
import datakit.audit.verdict as verdict
from datakit._core.progress import progress
from datakit._core.version import __version__
from datakit.audit.checks import BUILTINS  # noqa: F401  (importing it registers the built-in checks)
from datakit.audit.features import AuditFeatures, build_features
from datakit.audit.registry import CheckResult, registered_checks
from datakit.audit.schema import SCHEMA_VERSION, AuditSchemaError, ClassRow, FloorTest, sort_findings
from datakit.audit.stats import calibration

if TYPE_CHECKING:
    from datakit.audit.config import AuditConfig
    from datakit.audit.inputs import RunInputs


#: Top-level audit.json parts a check may fill (``CheckResult.sections``).
SECTIONS = ("summary", "amplification", "domains", "composition", "memorisation", "cas", "judge")


def build_audit(run: "RunInputs", cfg: "AuditConfig") -> dict:
    """Compute every section of audit.json for ``run`` under settings ``cfg``."""
    # numpy's BLAS only sees small matrices here (D×D covariances, per-class sets); its
    # worker threads cost far more than they give, badly so on a shared machine. The large
    # products (k-NN blocks, KID kernels, the judge) run in torch on the chosen device.
    threads = torch.get_num_threads()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            return _build_audit(run, cfg)
    finally:
        torch.set_num_threads(threads)


def _build_audit(run: "RunInputs", cfg: "AuditConfig") -> dict:
    timing: dict[str, float] = {}
    t = time.perf_counter()
    f = build_features(run, cfg)
    timing["features_s"] = time.perf_counter() - t
    _run_timed_checks(f, cfg, timing)
    results = f.results
    per_class, decided = class_rows(f, results, cfg.min_class_n)
    sections: dict[str, Any] = {k: None for k in SECTIONS}
    sections["summary"] = {}
    for name, r in results.items():
        unknown = [k for k in r.sections if k not in SECTIONS]
        if unknown:
            raise AuditSchemaError(f"Check {name!r} returned section(s) {', '.join(unknown)}, which "
                                   f"audit.json does not have; a check may fill: {', '.join(SECTIONS)}.")
        sections.update(r.sections)
    verdicts, out_of = decided
    findings = sort_findings(verdict.findings(
        [str(c) for c in f.classes], {r.class_name: r.vs_floor for r in per_class}, verdicts, out_of,
        [x for r in results.values() for x in r.findings]))
    warnings = f.warnings + _warnings(f, per_class, cfg)  # f.warnings: also the checks' own
    return {
        "schema_version": SCHEMA_VERSION,
        "run": {"run_dir": str(run.run_dir.resolve()), "model": run.config.get("model"),
                "conditional": run.conditional, "manifest": str(run.manifest.path.resolve()),
                "manifest_checksum": run.manifest.checksum, "generated_count": int(len(run.images)),
                "audited_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "datakit_version": __version__},
        "reference": f.reference_info,
        "judge": sections["judge"],
        "summary": sections["summary"],
        "per_class": per_class,
        "verdict": {"sentence": verdict.summary_sentence(sections["summary"], verdicts),
                    "stand_out": sorted(c for c, v in verdicts.items() if v.failed or v.collapsed),
                    "untested": sorted(c for c, v in verdicts.items() if v.untested)},
        "findings": findings,
        "checks": {n: {"score": r.score, "score_name": r.score_name, "findings": len(r.findings)}
                   for n, r in results.items()},
        "amplification": sections["amplification"],
        "domains": sections["domains"],
        "composition": sections["composition"],
        "memorisation": sections["memorisation"],
        "cas": sections["cas"],
        "warnings": warnings,
        "samples": {"reference": int(len(f.reference)), "held_out": int(len(f.held)),
                    "generated": int(len(f.generated)), "train": int(len(f.train)),
                    "held_out_source": f.reference_info.held_out_source},
        "config": cfg.to_dict(),
        "timing": timing,
    }


def _run_timed_checks(f: AuditFeatures, cfg, timing: dict[str, float]) -> None:
    """Run every registered check in order, timing each; each sees the earlier results in ``f.results``."""
    checks = registered_checks()
    with progress(total=len(checks), desc="audit checks", unit="check") as bar:
        for name, check in checks.items():
            bar.set_postfix_str(f"running {name}")  # the bar, on a terminal: the check under way
            t = time.perf_counter()
            f.results[name] = check(f, cfg)
            timing[f"{name}_s"] = time.perf_counter() - t
            bar.set_postfix_str(f"last {name}")  # a log line: the check just done
            bar.update(1)


#: Per-class keys a check's table may hold besides its declared metrics: the row's class,
#: its floor tests, the total-collapse decision, and the modes check's own evidence.
DECISION_KEYS = ("class_name", "vs_floor", "collapsed", "collapse_evidence", "_modes_evidence", "_modes_kind")


def class_rows(f: AuditFeatures, results: dict[str, CheckResult], min_class_n: int):
    """Merge every check's per-class table into one :class:`ClassRow` per class, with the
    verdict's ``collapsed``, ``failed``, ``failure_reasons`` and ``untested``
    (:func:`datakit.audit.verdict.decide`). Returns the rows and (verdicts, stand-outs).

    A table key no registered check declared (:mod:`datakit.audit.declare`), or a floor test
    no check declared, is an error naming the check and the key."""
    keys, tests, reasons = declare.row_keys(), declare.floor_tests(), declare.failure_reasons()
    by_class: dict[str, list[tuple[str, dict[str, Any]]]] = {str(c): [] for c in f.classes}
    for check, r in results.items():
        for t in r.table or []:
            for k in t:
                if k not in DECISION_KEYS and k not in keys:
                    raise AuditSchemaError(
                        f"Check {check!r} returned per-class key {k!r}, which no registered check "
                        "declares; declare it in the check's metrics (register_check(..., metrics=...)).")
            for k in t.get("vs_floor") or {}:
                if k not in tests:
                    raise AuditSchemaError(
                        f"Check {check!r} returned floor test {k!r}, which no registered check declares "
                        "as a metric's failure_reason or floor_test.")
            by_class[str(t["class_name"])].append((check, t))
    merged, kinds = [], {}
    for lab, name in enumerate(f.classes):
        metrics: dict[str, Any] = {k: None for k in keys}
        vs_floor: dict[str, FloorTest] = {}
        collapsed, evidence = False, ""
        for _, t in by_class[str(name)]:
            if t.get("_modes_kind"):
                kinds[str(name)] = t["_modes_kind"]
            for k, v in t.items():
                if k == "vs_floor":
                    vs_floor.update(v)
                elif k == "collapsed":
                    collapsed = v
                elif k == "collapse_evidence":
                    evidence = v
                elif k not in ("class_name", "_modes_evidence", "_modes_kind"):  # partial collapse: the verdict's
                    metrics[k] = v
        merged.append((lab, str(name), metrics, vs_floor, (bool(collapsed), evidence)))
    replicates: dict[str, dict[str, np.ndarray]] = {}
    for r in results.values():
        for test, per_class in r.replicates.items():
            replicates.setdefault(test, {}).update(per_class)
    held = {str(n): int((f.held_labels == lab).sum()) for lab, n in enumerate(f.classes)}
    generated = {str(n): int((f.assigned == lab).sum()) for lab, n in enumerate(f.classes)}
    verdicts, out_of = verdict.decide(
        [m[1] for m in merged], {m[1]: m[3] for m in merged}, replicates, {m[1]: m[4] for m in merged},
        {c: (held[c], generated[c]) for c in held}, min_class_n, modes_kinds=kinds)
    rows = []
    for lab, name, metrics, vs_floor, _ in merged:
        v = verdicts[name]
        rows.append(ClassRow(
            class_name=f.classes[lab], label=lab, train_count=int(f.train_counts[lab]),
            train_share=float(f.train_counts[lab] / max(1, f.train_counts.sum())),
            reference_count=int((f.reference_labels == lab).sum()), held_out_count=held[name],
            generated_count=generated[name], metrics=metrics, collapsed=v.collapsed,
            collapse_evidence=v.collapse_evidence, failed=v.failed,
            failure_reasons=[k for k in reasons if k in v.failure_reasons], vs_floor=vs_floor,
            untested=v.untested, standout=v.standout))
    return rows, (verdicts, out_of)


def _warnings(f: AuditFeatures, per_class: list[ClassRow], cfg) -> list[str]:
    out = []
    for lab, name in enumerate(f.classes):
        if f.train_counts[lab] == 0:
            out.append(f"Class {name} has no training images in {f.run.manifest.path.name}; its "
                       "per-class numbers have no training reference.")
    if len(f.generated) < cfg.min_density_samples:
        out.append(f"Only {len(f.generated)} generated samples: density, coverage and KID are noisy "
                   f"below about {cfg.min_density_samples}; generate more for firmer numbers.")
    dim = f.judge.net.feature_dim
    if len(f.reference) < dim:
        out.append(f"The training reference has {len(f.reference)} images, fewer than the "
                   f"{dim} feature dimensions: the Fréchet distance is unreliable.")
    rows = [{"class_name": r.class_name, "reference_count": r.reference_count,
             "generated_count": r.generated_count} for r in per_class]
    out += calibration.small_sample_warnings(rows, dim, cfg.k, cfg.min_density_samples)
    return out
