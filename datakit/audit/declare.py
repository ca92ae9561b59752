"""What a check declares about its numbers, once: the per-class metrics it writes.

A check registers with its metrics (:func:`datakit.audit.registry.register_check`), and
everything that lists per-class metrics reads them from here: audit.json's ``per_class`` row
keys and ``failure_reasons`` (:mod:`datakit.audit.schema`), the merge of check tables
(:mod:`datakit.audit.compute`), and the report's tables, legends and heatmaps. A new check's
metric therefore appears in all of them without editing any of those modules.

This module imports nothing from datakit, so the schema and the registry can both read it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

BETTER = ("higher", "lower", "equal")
HEATMAP = (None, "value", "over_floor")


@dataclass(frozen=True)
class MetricSpec:
    """One per-class metric a check writes.

    Attributes:
        key: its key in the check's table and audit.json's per-class rows.
        label: its name in sentences and heatmap headers (e.g. "label fidelity").
        short: the per-class table's column header (e.g. "LF").
        legend: the legend line under the table.
        better: "higher", "lower" or "equal" (a ratio that should be 1).
        failure_reason: the ``vs_floor`` test that fails the class when clearly worse than its
            floor (listed in ``failure_reasons``), or None: informational, never fails a class.
        floor_key: the per-class key of its real-vs-real floor, if the row carries one.
        floor_test: the ``vs_floor`` test the report shows beside the value (default: the
            failure reason).
        stored: False when the row carries no key of its own: value and floor are read from
            ``vs_floor[floor_test]`` (e.g. recall).
        shown: a column of the report's per-class table (False: in audit.json only).
        heatmap: None, "value" (a class × run heatmap of the value) or "over_floor" (of
            value ÷ floor).
        position: where its keys sit among the per-class keys and table columns (built-ins
            use 10, 20, ...; a new check's metrics follow them, in registration order).
        reason_position: where its failure reason sits in ``failure_reasons``.
    """

    key: str
    label: str
    short: str
    legend: str
    better: str = "higher"
    failure_reason: str | None = None
    floor_key: str | None = None
    floor_test: str | None = None
    stored: bool = True
    shown: bool = True
    heatmap: str | None = None
    position: float = math.inf
    reason_position: float = math.inf

    def __post_init__(self):
        if self.better not in BETTER:
            raise ValueError(f"Metric {self.key!r}: better={self.better!r}; valid: {', '.join(BETTER)}.")
        if self.heatmap not in HEATMAP:
            raise ValueError(f"Metric {self.key!r}: heatmap={self.heatmap!r}; valid: None, value, over_floor.")
        if not self.stored and self.test is None:
            raise ValueError(f"Metric {self.key!r} is not stored in the row, so it needs a floor_test.")

    @property
    def test(self) -> str | None:
        """The ``vs_floor`` test shown beside the value."""
        return self.floor_test or self.failure_reason

    def row_keys(self) -> tuple[str, ...]:
        """The per-class keys it writes: the value and its floor."""
        if not self.stored:
            return ()
        return (self.key,) + ((self.floor_key,) if self.floor_key else ())


_DECLARED: dict[str, tuple[MetricSpec, ...]] = {}


def declare(check: str, metrics: tuple[MetricSpec, ...]) -> None:
    """Record ``check``'s metrics (called by ``register_check``); a key another check
    declared, or declared twice, is an error."""
    taken = {k: c for c, ms in _DECLARED.items() for m in ms for k in m.row_keys() + (m.key,)}
    seen: set[str] = set()
    for m in metrics:
        for k in m.row_keys() + (m.key,):
            if k in taken or (k in seen and k != m.key):
                raise ValueError(f"Check {check!r} declares per-class key {k!r}, already declared by "
                                 f"check {taken.get(k, check)!r}.")
            seen.add(k)
    _DECLARED[check] = tuple(metrics)


def forget(check: str) -> None:
    """Drop ``check``'s declarations (called by ``unregister_check``)."""
    _DECLARED.pop(check, None)


def declared_metrics() -> list[MetricSpec]:
    """Every registered check's metrics, by ``position`` then registration order."""
    ms = [m for ms in _DECLARED.values() for m in ms]
    return sorted(ms, key=lambda m: m.position)  # stable: registration order among equals


def check_of(key: str) -> str | None:
    """The check that declared per-class key ``key`` (or None)."""
    for c, ms in _DECLARED.items():
        if any(key in m.row_keys() or key == m.key for m in ms):
            return c
    return None


def row_keys() -> list[str]:
    """audit.json's per-class metric keys, in order (values and floors)."""
    return [k for m in declared_metrics() for k in m.row_keys()]


def failure_reasons() -> list[str]:
    """Names a class's ``failure_reasons`` may hold, in the order they are listed."""
    ms = sorted((m for m in declared_metrics() if m.failure_reason), key=lambda m: m.reason_position)
    return list(dict.fromkeys(m.failure_reason for m in ms))


def floor_tests() -> list[str]:
    """Names a class's ``vs_floor`` may hold: every declared metric's test."""
    return list(dict.fromkeys(m.test for m in declared_metrics() if m.test))
