"""Sweeps: a series of study arms along one factor, and the data-efficiency curve they give.

A sweep is declared once and expands into one arm per value::

    [[sweep]]
    name = "mnist"                        # arms are named <name>_<value>: mnist_500, ...
    from = ["mnist"]                      # as in [[arm]]: ingest names (or `manifest`)
    factor = "size"                       # a compose option (size, skew, fraction, ...)
    values = [500, 1000, 2000]            #   or a training setting (width, augment, steps, ...)
    compose = { split = "train", holdout = 0.2, seed = 0 }   # shared by every arm (optional)
    train = { }                                              # shared by every arm (optional)

Each value is set as that compose option (when ``factor`` is a ComposeConfig field) or that
training setting (a TrainConfig field). The sweep's arms are ordinary arms afterwards; they
remember their level (``ArmSpec.levels``) so the study can draw the metric against it
(:func:`curve_rows`) and contrast neighbouring values.

A few factors are numbers the user thinks in that a compose option spells otherwise
(:data:`DERIVED_FACTORS`): ``factor = "skew_ratio"`` with ``values = [1, 2, 5, 10, 20]`` sets
``skew = "step:1/R"`` (the second half of the classes at 1/R of the first half's count), and
the curve's x-axis is R, the majority:minority ratio, with a tick at every value::

    [[sweep]]
    name = "skew"                         # arms skew_1, skew_2, skew_5, skew_10, skew_20
    from = ["mnist"]
    factor = "skew_ratio"
    values = [1, 2, 5, 10, 20]
    compose = { split = "train", size = 12500, holdout = 0.2 }
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, Sequence

from datakit.composition.config import ComposeConfig
from datakit.errors import StudyError
from datakit.training import TrainConfig
from datakit.training.rundir import atomic_write_bytes

#: Sweep factors that are a number in the user's words, set through a compose option:
#: {factor: (compose option, the option's value for a level, what a level must be)}.
DERIVED_FACTORS: dict[str, tuple[str, Callable[[Any], Any], str]] = {
    # R majority images per minority image: the second half of the classes at 1/R.
    "skew_ratio": ("skew", lambda r: f"step:{1 / r!r}",
                   "numbers of at least 1 (a majority class's image count over a minority "
                   "class's), e.g. values = [1, 2, 5, 10, 20]"),
}
SWEEP_KEYS = {"name", "from", "manifest", "factor", "values", "compose", "train"}
#: Columns of curve.csv.
#: ``class_group``: empty for a whole-set metric, else the class group the row measures
#: (:mod:`datakit.study.class_groups`).
CURVE_COLUMNS = ["sweep", "factor", "value", "metric", "mean", "ci_low", "ci_high", "n_seeds",
                 "class_group"]


def _arm_name(sweep: str, value: Any) -> str:
    text = re.sub(r"[^A-Za-z0-9_.+-]+", "-", str(value)).strip("-")
    return f"{sweep}_{text}"


def expand_sweeps(raw: Sequence[dict[str, Any]], where: str
                  ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """``[[sweep]]`` tables -> (raw ``[[arm]]`` tables, {arm name: {sweep, factor, value}}).

    Raises :class:`StudyError` naming the sweep and key for a malformed table.
    """

    compose_fields = {f.name for f in fields(ComposeConfig)}
    train_fields = {f.name for f in fields(TrainConfig)} - {"manifest", "out", "resume", "seed"}
    arms: list[dict[str, Any]] = []
    levels: dict[str, dict[str, Any]] = {}
    for i, s in enumerate(raw):
        swhere = f"{where} sweep {i + 1}"
        if not isinstance(s, dict):
            raise StudyError(f"{swhere} must be a [[sweep]] table.")
        unknown = sorted(set(s) - SWEEP_KEYS)
        if unknown:
            raise StudyError(f"{swhere}: unknown key(s) {', '.join(unknown)}; valid keys: "
                             f"{', '.join(sorted(SWEEP_KEYS))}.")
        name, factor, values = s.get("name"), s.get("factor"), s.get("values")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.+-]+", name):
            raise StudyError(f"{swhere} needs a `name` of letters, digits and _.+- (it prefixes "
                             f"its arms' names), got {name!r}.")
        if factor not in compose_fields | train_fields | set(DERIVED_FACTORS):
            raise StudyError(f"{swhere} ({name}): factor {factor!r} is neither a compose option "
                             f"nor a training setting; use e.g. size, skew, skew_ratio, fraction, "
                             f"width, augment.")
        if not isinstance(values, list) or len(values) < 2:
            raise StudyError(f"{swhere} ({name}) needs `values`, a list of at least two levels "
                             f"of {factor}, e.g. values = [500, 1000, 2000].")
        option, to_option = factor, (lambda v: v)
        if factor in DERIVED_FACTORS:
            option, to_option, valid = DERIVED_FACTORS[factor]
            _check_derived(values, factor, valid, s, option, f"{swhere} ({name})")
        where_to = "compose" if option in compose_fields else "train"
        for value in values:
            arm = {k: v for k, v in s.items() if k in ("from", "manifest")}
            arm["name"] = _arm_name(name, value)
            arm["compose"] = dict(s.get("compose") or {})
            arm["train"] = dict(s.get("train") or {})
            arm[where_to][option] = to_option(value)
            arms.append(arm)
            levels[arm["name"]] = {"sweep": name, "factor": factor, "value": value}
    return arms, levels


def _check_derived(values: list, factor: str, valid: str, sweep: dict[str, Any], option: str,
                   where: str) -> None:
    """A derived factor's levels must be plain numbers in range, and the sweep must leave the
    compose option it sets alone."""
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, float))
           or not v >= 1 or v != v or v == float("inf")]
    if bad:
        raise StudyError(f"{where}: {factor} values must be {valid}; got {bad[0]!r}.")
    if option in (sweep.get("compose") or {}):
        raise StudyError(f"{where}: factor {factor} sets compose option `{option}` itself; "
                         f"remove `{option}` from the sweep's compose table.")


def curve_rows(arms: dict[str, dict[str, Any]], levels: dict[str, dict[str, Any]]
               ) -> list[dict[str, Any]]:
    """The data-efficiency curve: one row per (sweep arm, metric) with the arm's mean and
    interval over seeds, ordered by sweep, metric and level.

    Args:
        arms: study.json's ``arms`` as {arm: {"metrics": {metric: {mean, ci_low, ci_high,
            n_seeds}}}}.
        levels: {arm: {sweep, factor, value}} from :func:`expand_sweeps`.
    """
    rows = []
    for arm, level in levels.items():
        for metric, m in (arms.get(arm) or {}).get("metrics", {}).items():
            rows.append({"sweep": level["sweep"], "factor": level["factor"],
                         "value": level["value"], "metric": metric, **{
                             k: m.get(k) for k in ("mean", "ci_low", "ci_high", "n_seeds")},
                         "class_group": None})
    return sorted(rows, key=lambda r: (r["sweep"], r["metric"], _sort_key(r["value"])))


def _sort_key(v: Any) -> tuple:
    return (0, float(v), "") if isinstance(v, (int, float)) else (1, 0.0, str(v))


def write_curve_csv(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write curve.csv atomically (columns :data:`CURVE_COLUMNS`)."""

    buf = io.StringIO()
    writer = csv.DictWriter(buf, CURVE_COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(Path(path), buf.getvalue().encode())
    return Path(path)
