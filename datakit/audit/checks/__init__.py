"""Audit checks: one shape, one registry.

A check is a function ``check(features, cfg) -> CheckResult`` reading the shared features
(:class:`datakit.audit.shared_features.AuditFeatures`). It returns its per-class table
(rows keyed by ``class_name``, merged into audit.json's ``per_class``), a score, its
findings, and ``sections``: the top-level audit.json parts it owns (e.g. ``summary``).
Checks run in registration order; a later check may read earlier results in
``features.results``. Built-in checks register with :func:`register_check`, exactly as a
user's check would.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from datakit.audit.schema import Finding
from datakit.errors import UnknownName

if TYPE_CHECKING:
    from datakit.audit.run import AuditConfig
    from datakit.audit.shared_features import AuditFeatures


@dataclass
class CheckResult:
    """What a check returns.

    Attributes:
        name: the check's registered name (``Finding.check`` of its findings).
        table: per-class rows ({"class_name": ..., metric: value, ...}) or None.
        score: one number summarising the check (None when it does not apply).
        score_name: what the score is.
        findings: its findings (any severity).
        sections: top-level audit.json keys this check fills, with their values.
        replicates: bootstrap replicates of per-class differences, {metric: {class: array}}
            (not written; read by the composition check).
    """

    name: str
    table: list[dict[str, Any]] | None
    score: float | None
    score_name: str
    findings: list[Finding]
    sections: dict[str, Any] = field(default_factory=dict)
    replicates: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


Check = Callable[["AuditFeatures", "AuditConfig"], CheckResult]
_REGISTRY: dict[str, Check] = {}


def register_check(name: str, check: Check) -> Check:
    """Add ``check`` under ``name`` (after those already registered); returns it."""
    _REGISTRY[name] = check
    return check


def unregister_check(name: str) -> None:
    """Remove a registered check."""
    if name not in _REGISTRY:
        raise UnknownName(f"No audit check named {name!r}; registered: {', '.join(_REGISTRY)}.")
    del _REGISTRY[name]


def registered_checks() -> dict[str, Check]:
    """The registered checks, in the order they run."""
    _load_builtins()
    return dict(_REGISTRY)


def run_checks(features: "AuditFeatures", cfg: "AuditConfig") -> dict[str, CheckResult]:
    """Run every registered check in order; each sees the earlier results in ``features.results``."""
    for name, check in registered_checks().items():
        features.results[name] = check(features, cfg)
    return features.results


_BUILTINS_LOADED = False


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    users = dict(_REGISTRY)
    _REGISTRY.clear()
    from datakit.audit.checks import builtin  # noqa: F401  (registers the built-ins, in order)
    builtin.register_builtins()
    _REGISTRY.update(users)  # checks a user registered early run after the built-ins


def names(classes: list[str], limit: int = 12) -> str:
    """'a, b and c' style list of class names for sentences."""
    shown = [str(c) for c in classes[:limit]]
    more = len(classes) - limit
    if more > 0:
        return ", ".join(shown) + f" and {more} more"
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f}%"
