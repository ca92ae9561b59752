"""The run-audit report: one self-contained HTML page for one run or several.

Read top to bottom: 1. the verdict, 2. the training set's composition (with a
Datasheets-for-Datasets "Composition" section), 3. training curves and sample grids over
time, 4. quality (whole-set metrics with floors and CIs, the per-class table with collapse
verdicts, generated vs real grids per class, memorisation pairs), 5. composition ↔ quality.
With several runs, a comparison of the runs comes right after the verdict.

Figures are inline data URIs; jinja2 autoescapes every string that comes from data.
"""
from __future__ import annotations

import datetime as _dt
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from datakit._core.atomic import atomic_write_text
from datakit._core.progress import log
from datakit._core.version import __version__
from datakit.audit.declare import MetricSpec, declared_metrics
from datakit.audit.many import audit_runs
from datakit.audit.schema import Audit, ClassRow, Confusion, Finding, FloorTest
from datakit.audit.verdict import standout_texts
from datakit.errors import ReportError
from datakit.report import evidence, figures
from datakit.report.comparison import Column, csv_uri, flagged_classes, heatmaps
from datakit.report.dataset import composition_section
from datakit.report.datasheet import composition_facts, datasheet
from datakit.report.inline import grid_data_uri, shown_size
from datakit.report.numbers import fmt, pct
from datakit.report.portable import relative_to_folder
from datakit.report.run_data import (
    RunData,
    count_correlations,
    judge_accuracy,
    memorisation_pairs,
    per_class_table,
    read_audited_run,
    shares,
    summary_metrics,
)
from datakit.report.verdict import comparison_note, findings
from datakit.study.contrasts import LABELS, metric_label
from datakit.study.schema import StudyResults
from datakit.study.sweep import CURVE_COLUMNS
from datakit.study.target import share_key, single_domain

TEMPLATES = Path(__file__).parent / "templates"
#: With more runs than this on one page, runs after each arm's first seed show fewer samples
#: per class and no animation, so that a 4-arm × 3-seed study stays under 4 MB.
COMPACT_ABOVE = 4
#: On such a crowded page each arm's animation is re-encoded below this many bytes (the grids
#: over time above it show the same samples at full size).
CROWDED_GIF_BYTES = 100_000
#: Classes shown with sample grids (the rest are in the table only).
MAX_GRID_CLASSES = 62
#: Per-class scatter plots (metric vs training count) per run: the strongest correlations.
MAX_SCATTERS = 2
#: Memorisation pairs shown per run.
MAX_MEMORISATION_PAIRS = 8
#: Flagged classes shown with their nearest training images, per run.
MAX_NEAREST_CLASSES = 12
#: Confusion matrices with more classes than this are drawn as a picture, not a table.
MAX_CONFUSION_TABLE = 20
#: Findings shown at the top of the verdict; the rest sit in a collapsed list below it.
VERDICT_TOP = 6
#: Settings of config.json shown in the run's header.
CONFIG_KEYS = ("model", "conditional", "label_dist", "steps", "batch_size", "width", "augment",
               "ema", "image_size", "channels", "num_classes", "seed", "device", "manifest")
#: Per-class table: short header and legend of the count columns; the metric columns' come
#: from the checks' declarations (:func:`shown_metrics`).
COUNTS_SHORT = {"train_count": ("train", "training images of the class"),
                "generated_count": ("gen", "generated samples of the class")}


def shown_metrics() -> dict[str, MetricSpec]:
    """The per-class table's metric columns, in order, as the registered checks declare them."""
    return {m.key: m for m in declared_metrics() if m.shown}


#: Runs-compared table: short header and legend of each column (short, so that 15 columns fit
#: 1024 px and an A4 page at 10 pt).
RUNS_SHORT = {"steps": ("steps", "training steps done"),
              "images": ("images", "training images"),
              "synthetic_share": ("synth", "share of synthetic images in the training set"),
              "wild_share": ("wild", "share of wild (photographed) images in the training set"),
              "handwritten_share": ("hand", "share of handwritten images in the training set"),
              "skew": ("skew", "imbalance ratio of the training set (max/min class count)"),
              "fd": ("FD", "Fréchet distance in the judge's features (lower is better)"),
              "kid": ("KID", "kernel distance in the judge's features, in their squared units (lower is better)"),
              "precision": ("prec", "precision: share of samples inside the real images' k-NN manifold"),
              "recall": ("rec", "recall: share of real images inside the samples' k-NN manifold"),
              "density": ("dens", "density: how many real images' k-NN balls hold each sample, ÷ k (about 1 for real images)"),
              "coverage": ("cov", "coverage: share of real images with a generated sample nearby"),
              "fd_floor": ("floor", "FD between held-out and training real images at the same n"),
              "fd_n": ("n", "generated and held-out images each metric and floor is computed on"),
              "collapsed_classes": ("coll", "classes that collapsed"),
              "failed_classes": ("fail", "classes clearly worse than their real-vs-real floor")}


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)),
                      autoescape=select_autoescape(["html"], default_for_string=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = fmt
    env.filters["sfmt"] = lambda x: fmt(x, signed=True)
    env.filters["pct"] = pct
    env.filters["fig"] = _figure_attrs
    env.filters["pic"] = _picture_attrs
    return env


def _figure_attrs(uri: str | None) -> Markup:
    """``class``, ``src``, ``width`` and ``height`` of a figure drawn at 2×: shown at half its
    pixels (``fig``: the browser test measures every figure's shown width)."""
    size = shown_size(uri or "")
    dims = f' width="{size[0]}" height="{size[1]}"' if size else ""
    return Markup(f'class="fig" src="{uri}"{dims}')


def _picture_attrs(p: Any) -> Markup:
    """``src``, ``width`` and ``height`` of an :class:`evidence.Picture` (pixel art at 2×)."""
    return Markup(f'src="{p.uri}" width="{p.width}" height="{p.height}"')


# -- sections ---------------------------------------------------------------------------------

def _composition(run: RunData, compact: bool = False, relative_to: Path | None = None
                 ) -> dict[str, Any]:
    """The training manifest: the data-audit page's composition section (classes, shares,
    examples, duplicates, history), our datasheet, and the training rows' own facts."""
    t = run.train_table()
    if t is None:
        return {}
    section = composition_section(run.manifest, examples_per_class=4 if compact else 8)
    section["path"] = _shown_path(section["path"], relative_to)
    return {"facts": composition_facts(run.manifest, t), "datasheet": datasheet(run.manifest),
            "section": section}


def _page_css() -> Markup:
    """Our stylesheet plus the data-audit page's ``.dk-*`` rules for its embedded section."""
    css = (TEMPLATES / "audit.css").read_text()
    dataset_css = TEMPLATES / "dataset.css"
    if dataset_css.exists():
        css += "\n" + "\n".join(line for line in dataset_css.read_text().splitlines()
                                 if line.startswith(".dk-"))
    return Markup(css)


def _training(run: RunData, compact: bool = False, crowded: bool = False) -> dict[str, Any]:
    """Curves, grids over time (labelled, first to last) and the animation, all inline."""
    # A compact run (a later seed of an arm on a crowded page) shows numbers and tables only;
    # its arm's first run carries the pictures, which keeps a 4-arm × 3-seed page small.
    ctx: dict[str, Any] = {"curves_img": None if compact else figures.training_curves(run.metrics),
                           "grids": [], "gif": None, "compact": compact}
    conditional = run.config.get("conditional", True) and run.generated_labels is not None \
        and (run.generated_labels >= 0).any()
    names = run.class_names() if conditional else None
    # on a crowded page only each arm's first run shows its grids over time and animation
    for path in [] if compact else evidence.over_time(run.sample_files):
        step = path.stem.replace("step_", "").lstrip("0") or "0"
        try:
            ctx["grids"].append({"step": step, "pic": evidence.labelled_grid(path, names)})
        except OSError:
            run.problems.append(f"{path.name} cannot be read; it is left out.")
    if run.gif is not None and not compact:
        ctx["gif"] = evidence.inline_gif(run.gif, CROWDED_GIF_BYTES if crowded
                                         else evidence.MAX_GIF_BYTES)
    m = run.metrics
    if m is not None and not m.empty:
        last = m.iloc[-1]
        ctx["last"] = {k: last[k] for k in ("step", "loss_d", "loss_g", "d_real", "d_fake",
                                            "acc_real", "acc_fake", "acc_aux", "images_per_s")
                       if k in m}
    return ctx


def _real_examples(run: RunData, label: int, n: int, rng: np.random.Generator) -> np.ndarray | None:
    if run.manifest is None:
        return None
    t = run.manifest.table
    held = t[t["split"] == "test"]
    pool = held if (held["label"] == label).any() else t
    rows = pool.loc[pool["label"] == label, "row"].to_numpy()
    if len(rows) == 0:
        return None
    pick = np.sort(rng.choice(rows, size=min(n, len(rows)), replace=False))
    return np.asarray(run.manifest.pixels[pick])


def _sample_grids(run: RunData, compact: bool = False) -> dict[str, Any]:
    """Per class: one sprite of generated samples beside as many held-out real ones, and for
    a failed or collapsed class its samples closest to a training image above that image."""
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {"per_class": [], "unconditional": None}
    if run.generated is None or len(run.generated) == 0:
        return out
    labels = run.generated_labels if run.generated_labels is not None else \
        np.full(len(run.generated), -1)
    names = run.class_names()
    if compact:
        return out
    n = evidence.PER_CLASS_IMAGES
    if (labels >= 0).any():
        by_name = {r.class_name: r for r in run.audit.per_class}
        nearest_left = MAX_NEAREST_CLASSES
        for lab in sorted(set(labels[labels >= 0].tolist()))[:MAX_GRID_CLASSES]:
            gen = run.generated[labels == lab]
            real = _real_examples(run, lab, n, rng)
            name = names[lab] if lab < len(names) else str(lab)
            row = by_name.get(name)  # None: a label the audit has no row for
            collapsed = bool(row is not None and row.collapsed)
            failed = bool(row is not None and row.failed)
            entry = {"class_name": name, "pic": evidence.class_sprite(gen[:n], real),
                     "n_gen": min(n, len(gen)), "n_real": 0 if real is None else len(real),
                     "collapsed": collapsed, "failed": failed,
                     "reasons": row.failure_reasons if row is not None else [],
                     "evidence": row.collapse_evidence if row is not None else None, "nearest": None}
            if (collapsed or failed) and nearest_left > 0:
                nearest_left -= 1
                entry["nearest"] = _nearest(run, lab, gen)
            entry["missed"] = _missed_mode(run, name) if collapsed else None
            out["per_class"].append(entry)
    else:
        real = None
        if run.manifest is not None:
            rows = run.manifest.table["row"].to_numpy()
            real = np.asarray(run.manifest.pixels[np.sort(rng.choice(rows, min(64, len(rows)),
                                                                     replace=False))])
        out["unconditional"] = {"pic": evidence.class_sprite(run.generated[:64], real)}
    return out


def _missed_mode(run: RunData, name: str) -> dict[str, Any] | None:
    """For a class whose samples miss a mode (the ``modes`` finding), the real images nearest
    that mode's centre: what its samples do not reach, to check the verdict by eye."""
    found = next((f for f in run.audit.findings if f.check == "modes" and f.classes == [name]
                  and isinstance(f.evidence, dict) and f.evidence.get("missed")), None)
    if found is None:
        return None
    m = run.reference_manifest()
    if m is None:
        return None
    missed = found.evidence["missed"][0]
    images = run.images_of_ids(m, missed["examples"])
    if not len(images):
        return None
    return {"pic": evidence.class_sprite(images, None), "n": len(images),
            "share": missed["real_share"], "got": missed["got"], "expected": missed["expected"],
            "kind": "mode" if found.evidence.get("kind") == "modes" else "region"}


def _nearest(run: RunData, label: int, gen: np.ndarray) -> dict[str, Any] | None:
    """A flagged class's samples closest to a training image of the class, with the image."""
    t = run.train_table()
    if t is None:
        return None
    rows = np.sort(t.loc[t["label"] == label, "row"].to_numpy())
    if len(rows) == 0:
        return None
    found = evidence.nearest_training(gen, np.asarray(run.manifest.pixels[rows]))
    return None if found is None else {"pic": found[0], "distances": found[1]}


def _memorisation(run: RunData) -> dict[str, Any]:
    mem = run.audit.memorisation
    ctx: dict[str, Any] = {"scalars": [], "pairs": []}
    if not mem:
        return ctx
    ctx["scalars"] = [(k, mem[k]) for k in ("exact_copies", "flagged_count", "flagged_share",
                                             "flagged_share_floor", "threshold", "quantile")]
    if mem["ct"]["value"] is not None:
        ctx["scalars"].append(("data-copying C_T (< -3: copying, > 0: underfitting)", mem["ct"]["value"]))
    if run.generated is None or run.manifest is None:
        return ctx
    store = run.manifest.pixels
    for p in memorisation_pairs(run.audit, run.manifest)[:MAX_MEMORISATION_PAIRS]:
        g, t = p["generated_index"], p["train_row"]
        if not (0 <= g < len(run.generated) and 0 <= t < len(store)):
            continue
        ctx["pairs"].append({"gen": grid_data_uri(run.generated[g:g + 1], ncols=1, scale=2),
                             "train": grid_data_uri(np.asarray(store[t:t + 1]), ncols=1, scale=2),
                             "distance": p["distance"], "class_name": p["class_name"]})
    return ctx


def _reference(run: RunData, relative_to: Path | None) -> dict[str, Any]:
    """The audit's reference record with its manifest as the page shows paths (audit.json
    stores it relative to RUN_DIR/audit, which is not the page's folder in general)."""
    ref = dict(vars(run.audit.reference))
    path = Path(ref["manifest"])
    path = path if path.is_absolute() else Path(run.run_dir) / "audit" / path
    ref["manifest"] = _shown_path(os.path.normpath(path.absolute()), relative_to)
    return ref


def _quality(run: RunData, compact: bool = False, relative_to: Path | None = None) -> dict[str, Any]:
    typed = run.audit.per_class
    pc = per_class_table(run.audit)
    specs = shown_metrics()
    _test_columns(pc, typed, specs)
    columns = [c for c in specs if c in pc and pd.to_numeric(pc[c], errors="coerce").notna().any()]
    counts = [c for c in ("train_count", "generated_count") if c in pc]
    rows = []
    for r, row in zip(pc.to_dict("records") if not pc.empty else [], typed):
        r["cells"] = [(r[c], r.get(_floor_column(specs[c])), _worse(row, specs[c]),
                       _difference(row, specs[c]) if _worse(row, specs[c]) else None,
                       _standout(row, specs[c])) for c in columns]
        r["untested"] = row.untested
        rows.append(r)
    header = ["class"] + counts + [x for c in columns for x in (c, f"{c}_floor")] \
        + ["collapsed", "collapse_evidence", "failed", "failure_reasons"]
    csv = csv_uri(header, [[r.get("class_name")] + [r.get(c) for c in counts]
                           + [x for c in columns for x in (r.get(c), r.get(_floor_column(specs[c])))]
                           + [r.get("collapsed"), r.get("collapse_evidence"), r.get("failed"),
                              ";".join(r.get("failure_reasons") or [])] for r in rows])
    short = {**COUNTS_SHORT, **{k: (m.short, m.legend) for k, m in specs.items()}}
    summary = []
    for k, v in summary_metrics(run.audit).items():
        scale = 1.0  # KID as the audit writes it, in the judge's squared feature units
        summary.append({"name": "KID" if k == "kid" else k, "key": k, **{
            f: (v.get(f) * scale if isinstance(v.get(f), (int, float)) else v.get(f))
            for f in ("value", "floor", "ci_low", "ci_high")},
            "better": v.get("better"), "sample_size": v.get("sample_size"),
            "fd_infinity": v.get("fd_infinity") if k == "fd" else None})
    return {
        "summary": summary,
        "negative_kid": any(m["key"] == "kid" and (m["floor"] or 0) < 0 for m in summary),
        "judge_accuracy": judge_accuracy(run.audit),
        "reference": _reference(run, relative_to),
        "counts": counts, "columns": columns, "short": short,
        "per_class": rows, "csv": csv,
        "confusion": _confusion(run.audit.confusion),
        "grids": _sample_grids(run, compact),
        "memorisation": _memorisation(run),
        "warnings": list(run.audit.warnings),
    }


def _floor_column(spec: MetricSpec) -> str:
    """The row key of a column's floor: its declared floor key, or (a metric read from its
    floor test) ``<key>_floor``."""
    return spec.floor_key or f"{spec.key}_floor"


def _test_columns(pc: pd.DataFrame, rows: list[ClassRow], specs: dict[str, MetricSpec]) -> None:
    """Metrics the row does not store (e.g. the partial-collapse recall test, ``vs_floor.recall``)
    as per-class columns with their floor, read from their floor test, so that a failure the
    verdict quotes can be read in the table."""
    if pc.empty:
        return
    for m in specs.values():
        if m.stored:
            continue
        tests: list[FloorTest | None] = [r.vs_floor.get(m.test) for r in rows]
        if any(t is not None and t.value is not None for t in tests):
            pc[m.key] = [None if t is None else t.value for t in tests]
            pc[_floor_column(m)] = [None if t is None else t.floor for t in tests]


def _worse(row: ClassRow, spec: MetricSpec) -> bool:
    """Whether a per-class cell failed its class: clearly worse than its floor on a test that
    can fail a class (the audit's own decision; informational metrics are never marked)."""
    if spec.failure_reason is None:
        return False
    test = row.vs_floor.get(spec.failure_reason)
    return bool(test is not None and test.worse) or spec.failure_reason in row.failure_reasons


def _difference(row: ClassRow, spec: MetricSpec) -> dict[str, Any] | None:
    """The failure evidence of a worse cell, as the verdict quotes it: the difference to the
    floor with its 95% interval, and for a metric whose heatmap is ÷ floor (FD) the value as a
    multiple of the floor."""
    test = row.vs_floor.get(spec.test or "")
    if test is None or test.difference is None:
        return None
    value, floor = test.value, test.floor
    ratio = value / floor if spec.heatmap == "over_floor" and value is not None and floor else None
    return {"difference": test.difference, "ci_low": test.ci_low, "ci_high": test.ci_high,
            "ratio": ratio}


def _standout(row: ClassRow, spec: MetricSpec) -> dict[str, str] | None:
    """A cell's stand-out evidence, as the verdict quotes it (:func:`datakit.audit.verdict.standout_texts`):
    the class's ratio to its floor, the other classes' range, and the class over their median."""
    s = row.standout.get(spec.failure_reason or "")
    return standout_texts(spec.failure_reason, s) if s and s.get("stands_out") else None


def _confusion(conf: Confusion) -> list[dict[str, Any]]:
    """Each confusion matrix as rows of (count, row share) cells for a heatmap table, or as a
    picture when there are too many classes for a table."""
    out = []
    for m, title in ((conf.held_out, "held-out real images (row: true label)"),
                     (conf.generated, "generated samples (row: conditioning label)")):
        if not m:  # no generated matrix for an unconditional run
            continue
        a = np.asarray(m, dtype=float)
        share = a / np.maximum(1, a.sum(1, keepdims=True))
        entry = {"title": title, "classes": conf.classes, "rows": None, "img": None,
                 "csv": csv_uri([""] + list(conf.classes),
                                [[c] + [int(x) for x in a[i]] for i, c in enumerate(conf.classes)])}
        if a.shape[0] > MAX_CONFUSION_TABLE:
            entry["img"] = figures.confusion_picture(share, conf.classes, title)
        else:
            entry["rows"] = [[(int(a[i, j]), float(share[i, j])) for j in range(a.shape[1])]
                             for i in range(a.shape[0])]
        out.append(entry)
    return out


def _links(run: RunData, compact: bool = False) -> dict[str, Any]:
    pc = per_class_table(run.audit)
    rhos = count_correlations(run.audit)
    scatters = []
    ranked = [] if compact else sorted(  # a compact run's figures are its arm's first run's
        (r for r in rhos if r["rho"] is not None and r["metric"] in pc
         and r["metric"] != "generated_share_ratio"), key=lambda r: -abs(r["rho"]))
    for r in ranked[:MAX_SCATTERS]:
        img = figures.metric_vs_count(pc, r["metric"], r["rho"])
        if img:
            scatters.append(img)
    cls = shares(run.audit, "class")
    dom = shares(run.audit, "domain")
    comp = run.audit.composition or {}
    return {
        "scatters": scatters, "rhos": rhos, "composition": comp,
        "class_shares": figures.share_comparison(*cls) if cls and not compact else None,
        "domain_shares": figures.share_comparison(*dom, title="Domain shares: training vs generated")
        if dom and len(dom[0]) > 1 and not compact else None,
        "compact": compact,
        "parts": _parts_table(run.audit.domains["parts"] if run.audit.domains else []),
    }


def _parts_table(parts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Whole-set metrics per subset/domain of a mixed training set (``domains.parts``: one flat
    row per part), as a table."""
    if not parts:
        return None
    return {"columns": list(dict.fromkeys(k for r in parts for k in r)), "rows": parts}


def _comparison(runs: list[RunData], factors: Sequence[str] | None = None) -> dict[str, Any] | None:
    if len(runs) < 2:
        return None
    table = []
    for run in runs:
        row = run.properties()
        row["arm"], row["seed"] = run.arm, run.seed  # colour and marker in the figure
        for k, v in summary_metrics(run.audit).items():
            row[k] = v["value"] if v["value"] is not None else None
        fd = run.audit.summary.get("fd")
        if fd:
            row["fd_floor"], row["fd_n"] = fd.floor, fd.sample_size
        rows = run.audit.per_class
        row["collapsed_classes"] = sum(r.collapsed for r in rows) if rows else None
        row["failed_classes"] = sum(r.failed for r in rows) if rows else None
        table.append(row)
    note = comparison_note(runs)
    df = pd.DataFrame(table)
    metrics = [m for m in ("fd", "kid", "precision", "recall", "density", "coverage") if m in df]
    varying = [m for m in metrics if pd.to_numeric(df[m], errors="coerce").nunique() > 1][:4]
    named = bool(factors)  # factors the study names are plotted whenever they vary at all
    factors = [f for f in (factors or ("images", "synthetic_share", "skew"))
               if f in df and df[f].nunique() > 1 and (named or f != "skew" or _skewed_apart(df[f]))]
    shares_present = [c for c in ("synthetic_share", "wild_share", "handwritten_share")
                      if c in df and (pd.to_numeric(df[c], errors="coerce").fillna(0) > 0).any()]
    cols = [c for c in ("run", "steps", "images") if c in df] + shares_present \
        + (["skew"] if "skew" in df else []) + metrics \
        + [c for c in ("fd_floor", "fd_n") if c in df] + ["collapsed_classes", "failed_classes"]
    records = df.to_dict("records")
    return {"columns": cols, "short": {c: RUNS_SHORT[c][0] for c in cols if c in RUNS_SHORT},
            "legend": [RUNS_SHORT[c] for c in cols if c in RUNS_SHORT], "rows": records, "comparable": note is None, "note": note,
            "csv": csv_uri(cols, [[r.get(c) for c in cols] for r in records]),
            "grid": figures.runs_metric_grid(df, varying, factors) if factors and varying else None,
            "grid_factors": ", ".join(FACTOR_WORDS.get(f, f) for f in factors)}


#: How the runs-compared caption names each factor a metric is plotted against.
FACTOR_WORDS = {"images": "training-set size", "synthetic_share": "synthetic share",
                "skew": "skew (imbalance ratio, max/min class count)"}
#: Runs whose imbalance ratios span less than this factor are not plotted against skew by
#: default: stratified subsamples of a balanced set differ by chance (1.27 against 1.33).
SKEW_SPAN = 1.5


def _skewed_apart(skew: pd.Series) -> bool:
    values = pd.to_numeric(skew, errors="coerce").dropna()
    return len(values) > 1 and values.min() > 0 and values.max() / values.min() >= SKEW_SPAN


def _shown_path(path: Any, relative_to: Path | None) -> str:
    """A path as the page shows it: relative to the page's folder when one is given."""
    if relative_to is None or not path:
        return str(path)
    return os.path.relpath(Path(path).resolve(), Path(relative_to).resolve())


def _run_context(run: RunData, index: int, compact: bool = False,
                 relative_to: Path | None = None, dataset: dict[str, Any] | None = None,
                 crowded: bool = False) -> dict[str, Any]:
    config = [(k, _shown_path(run.config[k], relative_to) if k == "manifest" else run.config[k])
              for k in CONFIG_KEYS if k in run.config]
    rows = run.audit.per_class
    return {
        "anchor": f"run-{index}", "label": run.label, "headline": run.audit.verdict.sentence,
        "run_dir": _shown_path(run.run_dir, relative_to),
        "config": config, "dataset": dataset,
        "flagged": sum(r.failed for r in rows),
        "collapsed": sum(r.collapsed for r in rows),
        "problems": run.problems,
        "training": _training(run, compact, crowded),
        "quality": _quality(run, compact, relative_to),
        "links": _links(run, compact),
    }


def _datasets(runs: list[RunData], compact: bool, relative_to: Path | None
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any] | None]]:
    """Each training set once (runs of one manifest share it), and each run's reference to it."""
    shown: dict[str, dict[str, Any]] = {}
    refs: list[dict[str, Any] | None] = []
    for run in runs:
        key = run.config.get("manifest_checksum") or str(run.config.get("manifest"))
        if run.manifest is None:
            refs.append(None)
            continue
        if key not in shown:
            shown[key] = {"anchor": f"dataset-{len(shown)}", "runs": [],
                          "manifest": _shown_path(run.config.get("manifest"), relative_to),
                          "composition": _composition(run, compact, relative_to)}
        shown[key]["runs"].append(run.label)
        refs.append({"anchor": shown[key]["anchor"], "manifest": shown[key]["manifest"]})
    return list(shown.values()), refs


def _command(argv: Sequence[str] | None, relative_to: Path | None) -> str:
    """The command that made the page, as typed: ``datakit`` for the entry point, paths under
    the page's folder relative to it, other absolute paths by their name only."""
    argv = list(sys.argv if argv is None else argv)
    if not argv:
        return "–"
    head = Path(argv[0]).name
    words = ["datakit" if head in ("datakit", "__main__.py") else head]
    for a in argv[1:]:
        if os.path.isabs(a):
            a = _shown_path(a, relative_to) if relative_to is not None else Path(a).name
        words.append(a)
    return shlex.join(words)


def _study_findings(study: StudyResults) -> list[Finding]:
    """A study's verdict: its contrasts' findings (written by the study layer,
    :func:`datakit.study.contrasts.study_findings`)."""
    return list(study.findings)


def render_report(runs: Sequence[RunData], title: str | None = None,
                  intro: str | None = None, factors: Sequence[str] | None = None,
                  study: StudyResults | None = None, relative_to: Path | None = None,
                  command: Sequence[str] | None = None) -> str:
    """Render the audit page of ``runs`` (read with :func:`read_audited_run`) to an HTML string.

    ``study``: a study's results (:class:`datakit.study.schema.StudyResults`); then the verdict is the study's,
    built from its contrasts, and the page opens with the contrasts, the class × run heatmaps
    and each metric across arms. ``relative_to``: show paths relative to this folder.
    ``command``: the command line that made the page (default ``sys.argv``).
    """
    runs = list(runs)
    if title is None:
        title = f"Audit of {runs[0].label}" if len(runs) == 1 else f"Audit of {len(runs)} runs"
    verdict = findings(runs) if study is None else _study_findings(study)
    # every fail is shown; warnings and notes fill the top up to VERDICT_TOP
    top = max(VERDICT_TOP, sum(f.severity == "fail" for f in verdict))
    many = len(runs) > COMPACT_ABOVE
    seen_arms: set[str] = set()
    compact = []
    for r in runs:  # on a crowded page only each arm's first run shows everything
        arm = r.arm if r.arm is not None else r.label  # a run outside a study is its own arm
        compact.append(many and arm in seen_arms)
        seen_arms.add(arm)
    datasets, refs = _datasets(runs, many, relative_to)
    per_class_runs = ([Column(f"{r['arm']} s{r['seed']}", _study_rows(r, i), r["arm"], r["seed"])
                       for i, r in enumerate(study.runs)] if study is not None else
                      [Column(r.label, list(r.audit.per_class), r.arm, r.seed) for r in runs])
    ctx = {
        "title": title, "intro": intro,
        "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": _command(command, relative_to), "version": __version__,
        "relative_paths": relative_to is not None,
        "css": _page_css(), "script": Markup((TEMPLATES / "sort.js").read_text()),
        "findings": verdict[:top],
        "more_findings": verdict[top:],
        "comparison": _comparison(runs, factors),
        "heatmaps": heatmaps(per_class_runs) if len(per_class_runs) > 1 or study else [],
        "flagged": flagged_classes(per_class_runs),
        "study": _study_section(study) if study is not None else None,
        "datasets": datasets,
        "runs": [_run_context(r, i, c, relative_to, ref, crowded=many)
                 for i, (r, c, ref) in enumerate(zip(runs, compact, refs))],
    }
    return _env().get_template("audit.html").render(**ctx)


def _study_rows(record: dict[str, Any], index: int) -> list[ClassRow]:
    """A study.json run's per-class rows (the audit's rows, as audit.json holds them), typed."""
    return [ClassRow.from_dict(r, f"study.json: runs[{index}].per_class[{i}]")
            for i, r in enumerate(record["per_class"])]


def _study_section(study: StudyResults) -> dict[str, Any]:
    """What the study part of the page shows: contrasts, arms with intervals, budget, runs."""
    arms = study.arms
    metrics = list(dict.fromkeys(m for a in arms for m in a.get("metrics", {})))
    seeds: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for r in study.runs:
        if r.get("diverged"):
            continue  # shown apart, with the failed runs; its arm's mean leaves it out too
        for m, v in r["summary"].items():
            val = v["value"]
            if isinstance(val, (int, float)):
                seeds.setdefault(r["arm"], {}).setdefault(m, []).append((r["seed"], float(val)))
    contrasts = study.contrasts
    target = single_domain(study.reference.get("target"))
    share = share_key(target) if target else None
    labels = {**LABELS, **({share: metric_label(share)} if share else {})}
    views = list(dict.fromkeys(v for a in arms for v in (a.get("views") or {})))
    return {"reference": study.reference, "budget": study.budget,
            "target": target, "share_key": share,
            "failed": [r for r in study.runs if r.get("diverged")],
            "views": [{"name": v, "metrics": list(dict.fromkeys(
                m for a in arms for m in ((a.get("views") or {}).get(v) or {})))} for v in views],
            "contrasts": contrasts, "arms": arms, "metrics": metrics, "labels": labels,
            "runs": study.runs,
            "contrasts_csv": csv_uri(["factor", "a", "b", "metric", "difference", "ci_low", "ci_high",
                                      "n_seeds", "conclusive", "p_value", "q_value"],
                                     [[c.get(k) for k in ("factor", "a", "b", "metric", "difference",
                                                          "ci_low", "ci_high", "n_seeds", "conclusive",
                                                          "p_value", "q_value")]
                                      for c in contrasts]),
            "arms_csv": csv_uri(["arm", "metric", "mean", "ci_low", "ci_high", "n_seeds"],
                                [[a["arm"], m, v.get("mean"), v.get("ci_low"), v.get("ci_high"),
                                  v.get("n_seeds")] for a in arms
                                 for m, v in (a.get("metrics") or {}).items()]),
            "arms_img": figures.arms_with_intervals(
                arms, [m for m in ("fd", "label_fidelity", "coverage", "precision", "recall", "kid",
                                   share) if m in metrics], seeds, labels),
            "curve_img": figures.data_efficiency_curve(study.curve),
            "groups": study.class_groups,
            "group_curve_img": figures.class_group_curve(study.curve, study.class_groups),
            # in the page itself: a curve.csv is written beside study.json, but a page may be
            # shipped without its study folder
            "curve_csv": csv_uri(CURVE_COLUMNS, [[row.get(k) for k in CURVE_COLUMNS]
                                                 for row in study.curve])
            if study.curve else None}


def _unique_labels(run_dirs: Sequence[Path]) -> list[str]:
    """Folder names, or parent/name where two runs share a folder name."""
    names = [p.resolve().name for p in run_dirs]
    return [f"{p.resolve().parent.name}/{n}" if names.count(n) > 1 else n
            for p, n in zip(run_dirs, names)]


def write_report(run_dirs: Sequence[str | os.PathLike], out: str | os.PathLike,
                 audits: Sequence[Audit] | None = None, title: str | None = None,
                 intro: str | None = None, labels: Sequence[str] | None = None,
                 factors: Sequence[str] | None = None, study: StudyResults | None = None,
                 relative_paths: bool = False, command: Sequence[str] | None = None,
                 arm_seeds: Sequence[tuple[str, int]] | None = None) -> Path:
    """Write the audit page of one or several run directories to ``out`` (atomically).

    Args:
        run_dirs: run directories (each with ``audit/audit.json`` unless ``audits`` is given).
        out: the HTML file to write.
        audits: the runs' audits, in the same order (read from disk when omitted).
        title, intro: the page's heading and an optional paragraph under it.
        labels: names for the runs (default: their folder names).
        factors: run properties the comparison plots metrics against (default: images,
            synthetic_share, skew; those that do not vary are left out).
        study: a study's results (see :func:`render_report`).
        relative_paths: show paths relative to the page's folder.
        command: the command line that made the page (default ``sys.argv``).
        arm_seeds: each run's (arm, seed) when the runs are a study's: a crowded page shows
            each arm's first run in full, and the class × run tables head runs by arm.
    Returns:
        The path written.
    """
    dirs = [Path(d) for d in run_dirs]
    labels = list(labels) if labels else _unique_labels(dirs)
    audits = list(audits) if audits is not None else [None] * len(dirs)
    identities = list(arm_seeds) if arm_seeds is not None else [(None, None)] * len(dirs)
    runs = [read_audited_run(d, a, label=lab, arm=arm, seed=seed)
            for d, a, lab, (arm, seed) in zip(dirs, audits, labels, identities)]
    out = Path(out)
    html = render_report(runs, title=title, intro=intro, factors=factors, study=study,
                         relative_to=out.parent if relative_paths else None, command=command)
    if relative_paths:  # the embedded sections (composition, datasheet) print manifest paths too
        html = relative_to_folder(html, out.parent)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, html)
    return out


def default_report_path(run_dirs: Sequence[str | os.PathLike]) -> Path:
    """RUN_DIR/audit/report.html for one run, ./audit_report.html for several."""
    return Path(run_dirs[0]) / "audit" / "report.html" if len(run_dirs) == 1 else Path("audit_report.html")


def audit_and_report(run_dirs: Sequence[str | os.PathLike], out: str | os.PathLike | None = None,
                     config: Any = None, reuse: bool = False, title: str | None = None,
                     intro: str | None = None, labels: Sequence[str] | None = None,
                     factors: Sequence[str] | None = None) -> tuple[Path, list[Audit]]:
    """Audit every run (:func:`audit_runs`) and write one report over all of them.

    Args:
        run_dirs: run directories written by the trainer.
        out: the HTML file (default: :func:`default_report_path`).
        config: an ``AuditConfig`` (default settings when None).
        reuse: keep an existing ``audit/audit.json`` that is newer than the run's
            ``generated.npz`` and was made with the same settings, instead of recomputing it.
    Returns:
        (path of the report, the audits in run order).
    """
    audits = audit_runs(run_dirs, config=config, reuse=reuse)
    out = Path(out) if out is not None else default_report_path(run_dirs)
    try:
        write_report(run_dirs, out, audits=audits, title=title, intro=intro, labels=labels,
                     factors=factors, relative_paths=True)
    except OSError as e:
        # audit.json is new: an older page beside it would now contradict it
        stale = out.exists()
        if stale:
            out.unlink()
        raise ReportError(f"The report {out} could not be written ({e.strerror or e}); the audits are "
                          "in each run's audit/audit.json" + (f", and the older {out.name}, which no longer "
                          "matched them, was removed" if stale else "") + ". Free space (or choose "
                          "another --out) and run `datakit audit --reuse` on the same runs to write it.") from e
    log(f"Report written to {out}")
    return out, audits
