"""The comparison a study page opens with: class × run heatmap tables and per-class CSV.

A heatmap is an HTML table (one per metric): rows are classes, columns are runs; each cell
holds the value, a ✗ when the class is clearly worse than its floor on that check and a C
when the class collapsed, and a background colour. It reads with scripts and colours off.
Runs named "arm s0" or "arm (seed 0)" are headed by their arm over their seeds (two header
rows), so that 12 runs of long arm names fit the page's width.
"""
from __future__ import annotations

import csv
import io
import re
import urllib.parse
from typing import Any, Sequence

from datakit.audit.declare import declared_metrics
from datakit.report.numbers import fmt

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


def _value(row: dict[str, Any], key: str) -> float | None:
    if key.endswith("_over_floor"):
        spec = next(m for m in declared_metrics() if f"{m.key}_over_floor" == key)
        v, floor = row.get(spec.key), row.get(spec.floor_key or "")
        return v / floor if v is not None and floor else None
    v = row.get(key)
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


#: A run label that names an arm and a seed: "arm s0" or "arm (seed 0)".
_ARM_SEED = re.compile(r"^(?P<arm>.+?) (?:s(?P<s>\d+)|\(seed (?P<seed>\d+)\))$")


def column_groups(labels: Sequence[str]) -> tuple[list[dict[str, Any]], list[str]] | None:
    """Header rows for ``labels`` when every one names an arm and a seed: the arms in order,
    each with how many consecutive columns it spans, and a short seed label ("s0") per column.
    None when some label does not name a seed (then each column is headed by its label)."""
    found = [_ARM_SEED.match(lab) for lab in labels]
    if not found or not all(found):
        return None
    groups: list[dict[str, Any]] = []
    for m in found:
        if groups and groups[-1]["name"] == m["arm"]:
            groups[-1]["span"] += 1
        else:
            groups.append({"name": m["arm"], "span": 1})
    return groups, [f"s{m['s'] if m['s'] is not None else m['seed']}" for m in found]


def heatmaps(runs: Sequence[tuple[str, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """One heatmap per metric over ``runs`` = [(label, per_class rows)], classes in the first
    run's order. Each cell: {text, colour, worse, collapsed}."""
    classes = list(dict.fromkeys(str(r["class_name"]) for _, rows in runs for r in rows))
    by_run = [{str(r["class_name"]): r for r in rows} for _, rows in runs]
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
                worse = reason is not None and (
                    bool((r.get("vs_floor") or {}).get(reason, {}).get("worse"))
                    or bool(r.get("failed") and reason in (r.get("failure_reasons") or [])))
                mark = (" ✗" if worse else "") + (" C" if r.get("collapsed") else "")
                cells.append({"text": fmt(v) + mark, "colour": _colour(v, better, worse),
                              "worse": worse, "collapsed": bool(r.get("collapsed")),
                              "sort": "" if v is None else repr(v)})
            table.append({"class_name": c, "cells": cells})
        if any(cell["sort"] != "" for row in table for cell in row["cells"]):  # a metric with values
            labels = [lab for lab, _ in runs]
            out.append({"key": key, "header": header, "legend": legend,
                        "runs": labels, "groups": column_groups(labels), "rows": table,
                        "csv": csv_uri(["class"] + [lab for lab, _ in runs],
                                       [[row["class_name"]] + [cell["sort"] for cell in row["cells"]]
                                        for row in table])})
    return out


def flagged_classes(runs: Sequence[tuple[str, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """Classes failed or collapsed in some run: {class_name, runs failed, runs collapsed}."""
    out: dict[str, dict[str, Any]] = {}
    for label, rows in runs:
        for r in rows:
            if r.get("failed") or r.get("collapsed"):
                e = out.setdefault(str(r["class_name"]), {"class_name": str(r["class_name"]),
                                                         "failed": [], "collapsed": []})
                if r.get("failed"):
                    e["failed"].append(label)
                if r.get("collapsed"):
                    e["collapsed"].append(label)
    return list(out.values())


def csv_uri(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A table as a ``data:text/csv`` link target (full precision, no formatting)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow(["" if v is None else v for v in r])
    return "data:text/csv;charset=utf-8," + urllib.parse.quote(buf.getvalue())
