"""Audit checks: one shape, one registry.

A check is a function ``check(features, cfg) -> CheckResult`` reading the shared features
(:class:`datakit.audit.features.AuditFeatures`). It returns its per-class table
(rows keyed by ``class_name``, merged into audit.json's ``per_class``), a score, its
findings, and ``sections``: the top-level audit.json parts it owns (e.g. ``summary``).
Checks run in registration order; a later check may read earlier results in
``features.results``. The built-in checks (:mod:`datakit.audit.checks`) register with
:func:`register_check`, exactly as a user's check would.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from datakit.audit.declare import MetricSpec, declare, forget
from datakit.audit.schema import Finding
from datakit.errors import BadName, UnknownName

if TYPE_CHECKING:
    from datakit.audit.config import AuditConfig
    from datakit.audit.features import AuditFeatures


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


def register_check(name: str, check: Check, metrics: tuple[MetricSpec, ...] = ()) -> Check:
    """Add ``check`` under ``name``, to run after those already registered; returns it.

    ``metrics``: the per-class metrics its table writes (:class:`MetricSpec`); audit.json's
    per-class rows, failure reasons and the report's tables read them, and a table key no
    check declared is an error. The built-in checks register first, through this same
    function, when :mod:`datakit.audit.checks` is imported (which importing anything under
    :mod:`datakit.audit` does). A name already taken is an error: unregister it first.
    """
    if name in _REGISTRY:
        raise BadName(f"An audit check named {name!r} is already registered; "
                      f"unregister_check({name!r}) first, or choose another name.")
    try:
        declare(name, tuple(metrics))
    except ValueError as e:
        raise BadName(str(e)) from None
    _REGISTRY[name] = check
    return check


def unregister_check(name: str) -> None:
    """Remove a registered check."""
    if name not in _REGISTRY:
        raise UnknownName(f"No audit check named {name!r}; registered: {', '.join(_REGISTRY)}.")
    del _REGISTRY[name]
    forget(name)


def registered_checks() -> dict[str, Check]:
    """The registered checks, in the order they run."""
    return dict(_REGISTRY)


def names(classes: list[str], limit: int = 12) -> str:
    """'a, b and c' style list of class names for sentences."""
    shown = [str(c) for c in classes[:limit]]
    more = len(classes) - limit
    if more > 0:
        return ", ".join(shown) + f" and {more} more"
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f}%"
