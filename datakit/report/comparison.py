"""The comparison a study page opens with: class × run heatmap tables and per-class CSV.

A heatmap is an HTML table (one per metric): rows are classes, columns are runs; each cell
holds the value, a ✗ when the class is clearly worse than its floor on that check and a C
when the class collapsed, and a background colour. It reads with scripts and colours off.
The runs of a study (each column knows its arm and seed) are headed by their arm over their
seeds (two header rows), so that 12 runs of long arm names fit the page's width.
"""
from __future__ import annotations

import csv
import io
import urllib.parse
from dataclasses import dataclass
from typing import Any, Sequence

from datakit.audit.declare import declared_metrics
from datakit.audit.schema import ClassRow
from datakit.report.numbers import fmt


@dataclass
class Column:
    """One run's column of the class × run tables: the label it is headed by, its per-class
    rows, and its arm and seed when it is a run of a study (None otherwise)."""

    label: str
    rows: list[ClassRow]
    arm: str | None = None
    seed: int | None = None


def heatmap_metrics() -> list[tuple[str, str, str, str | None, str]]:
    """Heatmap metrics, from the registered checks' declarations: (key, header, legend, the
    floor test whose ✗ it shows, better). A metric declared ``heatmap="over_floor"`` is shown
    as value ÷ floor under the key ``<key>_over_floor``."""
    out = []
    for m in declared_metrics():
        if m.heatmap == "value":
            out.append((m.key, m.label, m.legend, m.failure_reason, m.better))
        elif m.heatmap == "over_floor":
            out.append((f"{m.key}_over_floor", f"{m.label} / floor",
                        f"{m.legend}, divided by its real-vs-real floor (1 = as good as held-out real images)",
                        m.failure_reason, m.better))
    return out


def _value(row: ClassRow, key: str) -> float | None:
    if key.endswith("_over_floor"):
        spec = next(m for m in declared_metrics() if f"{m.key}_over_floor" == key)
        v, floor = row.metrics.get(spec.key), row.metrics.get(spec.floor_key or "")
        return v / floor if v is not None and floor else None
    v = row.metrics.get(key)  # None for a metric the row does not store
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _colour(v: float | None, better: str, worse: bool) -> str:
    """Cell background: red when the check failed, else a blue whose strength is the goodness."""
    if worse:
        return "#f2b8b8"
    if v is None:
        return "#ffffff"
    if better == "higher":
        good = max(0.0, min(1.0, v))
    elif better == "lower":
        good = max(0.0, min(1.0, 1.0 / max(v, 1e-9)))
    else:
        good = max(0.0, 1.0 - min(1.0, abs(v - 1.0)))
    alpha = 0.08 + 0.45 * good
    return f"rgba(76, 114, 176, {alpha:.2f})"


def column_groups(columns: Sequence[Column]) -> tuple[list[dict[str, Any]], list[str]] | None:
    """Header rows for ``columns`` when every one is a study's run (has an arm and a seed): the
    arms in order, each with how many consecutive columns it spans, and a short seed label
    ("s0") per column. None otherwise (then each column is headed by its label)."""
    if not columns or any(c.arm is None or c.seed is None for c in columns):
        return None
    groups: list[dict[str, Any]] = []
    for c in columns:
        if groups and groups[-1]["name"] == c.arm:
            groups[-1]["span"] += 1
        else:
            groups.append({"name": c.arm, "span": 1})
    return groups, [f"s{c.seed}" for c in columns]


def heatmaps(runs: Sequence[Column]) -> list[dict[str, Any]]:
    """One heatmap per metric over the runs' columns, classes in the first run's order. Each
    cell: {text, colour, worse, collapsed}."""
    classes = list(dict.fromkeys(r.class_name for run in runs for r in run.rows))
    by_run = [{r.class_name: r for r in run.rows} for run in runs]
    out = []
    for key, header, legend, reason, better in heatmap_metrics():
        table = []
        for c in classes:
            cells = []
            for rows in by_run:
                r = rows.get(c)
                if r is None:
                    cells.append({"text": "–", "colour": "#fff", "worse": False, "collapsed": False,
                                  "sort": ""})
                    continue
                v = _value(r, key)
                test = r.vs_floor.get(reason) if reason is not None else None
                worse = reason is not None and (
                    bool(test is not None and test.worse)
                    or bool(r.failed and reason in r.failure_reasons))
                mark = (" ✗" if worse else "") + (" C" if r.collapsed else "")
                cells.append({"text": fmt(v) + mark, "colour": _colour(v, better, worse),
                              "worse": worse, "collapsed": bool(r.collapsed),
                              "sort": "" if v is None else repr(v)})
            table.append({"class_name": c, "cells": cells})
        if any(cell["sort"] != "" for row in table for cell in row["cells"]):  # a metric with values
            labels = [run.label for run in runs]
            out.append({"key": key, "header": header, "legend": legend,
                        "runs": labels, "groups": column_groups(runs), "rows": table,
                        "csv": csv_uri(["class"] + labels,
                                       [[row["class_name"]] + [cell["sort"] for cell in row["cells"]]
                                        for row in table])})
    return out


def flagged_classes(runs: Sequence[Column]) -> list[dict[str, Any]]:
    """Classes failed or collapsed in some run: {class_name, runs failed, runs collapsed}."""
    out: dict[str, dict[str, Any]] = {}
    for run in runs:
        for r in run.rows:
            if r.failed or r.collapsed:
                e = out.setdefault(r.class_name, {"class_name": r.class_name,
                                                  "failed": [], "collapsed": []})
                if r.failed:
                    e["failed"].append(run.label)
                if r.collapsed:
                    e["collapsed"].append(run.label)
    return list(out.values())


def csv_uri(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A table as a ``data:text/csv`` link target (full precision, no formatting)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow(["" if v is None else v for v in r])
    return "data:text/csv;charset=utf-8," + urllib.parse.quote(buf.getvalue())
