"""Seaborn/matplotlib figures of the run-audit report, each returned as an inline PNG data URI.

Every function takes plain data (lists, dicts, DataFrames), draws one small figure and
returns ``data:image/png;base64,...`` (see :mod:`datakit.report.inline`), so the page
stays a single self-contained file. Functions return ``None`` when there is nothing to draw.

Figures are made to be read: text of at least :data:`MIN_POINTS` at the size shown, no
figure narrower than :data:`MIN_FIGURE_PX` and no panel of a multi-panel figure narrower
than :data:`MIN_PANEL_PX` (the page shows a figure at 96 px per inch, drawn at twice that),
axis titles in words with their units (:func:`axis_title`), a tick at every swept value,
and one colour per arm and one marker per seed in every figure of a study
(:func:`arm_colours`, :data:`SEED_MARKERS`).
"""
from __future__ import annotations

import math
import textwrap
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # no display: figures are rendered to PNG bytes only

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from datakit.report.inline import figure_data_uri  # noqa: E402

sns.set_theme(style="whitegrid", context="notebook", font_scale=1.0)  # text >= 10 pt
#: Figures are drawn at twice the resolution they are shown at (the page halves them).
DPI = 192
#: Smallest text in any figure, in points (at the shown size).
MIN_POINTS = 10
#: Shown pixels per inch of figure (the page halves the DPI-192 drawing).
SHOWN_PPI = 96
#: No figure is narrower than this when shown (CSS pixels).
MIN_FIGURE_PX = 300
#: No panel (axes cell) of a multi-panel figure is narrower than this when shown.
MIN_PANEL_PX = 320
#: Width of one panel cell, in inches (4.8 in = 461 px: beside a two-line axis title, the
#: axes inside stay >= 320 px).
PANEL_IN = 4.8
#: Panels per row of a multi-panel figure: two fit the page's 1,116 px at full size (a
#: legend goes below them), so that no text is shown below 10 pt.
PANEL_COLUMNS = 2
#: One marker per seed (in the study's seed order), in every figure.
SEED_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")

#: Axis titles: each metric in words, with its unit or range.
METRIC_TITLES = {
    "fd": "Fréchet distance (judge features; lower is better)",
    "kid": "KID (judge features, squared; lower is better)",
    "label_fidelity": "Label fidelity (share of samples read as their class)",
    "coverage": "Coverage (share of real images with a sample near)",
    "recall": "Recall (share of real images covered)",
    "precision": "Precision (share of samples near real images)",
    "density": "Density (real k-NN balls per sample ÷ k)",
    "cas_accuracy": "Classification accuracy score (share correct)",
    "diversity_ratio": "Diversity (share of the real class's)",
    "generated_share_ratio": "Generated share ÷ training share",
    "fd_over_floor": "FD ÷ its real-vs-real floor",
}
#: Axis titles of the factors a study plots metrics against.
FACTOR_TITLES = {
    "size": "Training-set size (images, before the hold-out)",
    "images": "Training images (count)",
    "skew": "Imbalance ratio (largest ÷ smallest class count)",
    "skew_ratio": "Majority : minority ratio (a majority class's images per minority image)",
    "synthetic_share": "Synthetic share of training images",
    "wild_share": "Natural-scene (wild) share of training images",
    "handwritten_share": "Handwritten share of training images",
    "steps": "Training steps",
    "width": "Network width (channels)",
    "train_count": "Training images of the class (count)",
}


def axis_title(key: str) -> str:
    """An axis title in words with its unit for a metric or factor key (never the raw key)."""
    if key in METRIC_TITLES:
        return METRIC_TITLES[key]
    if key in FACTOR_TITLES:
        return FACTOR_TITLES[key]
    if key.startswith("generated_") and key.endswith("_share"):
        return f"Generated {key[len('generated_'):-len('_share')]} share (share of samples)"
    return key.replace("_", " ").capitalize()


def arm_colours(arms: Sequence[str]) -> dict[str, Any]:
    """One colour per arm, in the study's arm order (the same arm has the same colour in
    every figure of a page)."""
    arms = list(dict.fromkeys(arms))
    palette = sns.color_palette("tab10" if len(arms) <= 10 else "tab20", len(arms))
    return dict(zip(arms, palette))


def seed_markers(seeds: Sequence[Any]) -> dict[Any, str]:
    """One marker per seed, in sorted seed order."""
    order = sorted(dict.fromkeys(seeds), key=lambda s: (str(type(s)), s))
    return {s: SEED_MARKERS[i % len(SEED_MARKERS)] for i, s in enumerate(order)}


def _grid(n: int, height: float = 3.4):
    """``n`` panels in rows of :data:`PANEL_COLUMNS`, each :data:`PANEL_IN` wide."""
    cols = min(PANEL_COLUMNS, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, squeeze=False, figsize=(PANEL_IN * cols, height * rows))
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)[:n]


def _y_title(ax, text: str, width: int = 32) -> None:
    """A y-axis title broken into lines of at most ``width`` characters, so that a long title
    stays within its panel's height instead of running into the panel below (at 10 pt, 32
    characters are about 2.4 inches, a 3.4-inch panel's plotting height) and the layout
    leaves room for it beside the panel on its left."""
    ax.set_ylabel("\n".join(textwrap.wrap(text, width)) or text)


def _ticks_at(ax, values: Sequence[float]) -> None:
    """A labelled tick at every value (a sweep's levels), in the page's number format."""
    from datakit.report.numbers import fmt
    from matplotlib.ticker import FixedLocator, NullLocator
    values = sorted(set(float(v) for v in values))
    ax.xaxis.set_major_locator(FixedLocator(values))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([fmt(int(v) if float(v).is_integer() else v) for v in values],
                       rotation=30 if len(values) > 4 else 0, ha="right" if len(values) > 4 else "center")


def _legend_outside(ax, title: str | None = None) -> None:
    """The legend right of the axes, never on the data."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=MIN_POINTS, title=title,
                  frameon=False)



def _finite(values: Sequence[Any]) -> np.ndarray:
    arr = pd.to_numeric(pd.Series(list(values)), errors="coerce").to_numpy(dtype=float)
    return arr


def training_curves(metrics: pd.DataFrame) -> str | None:
    """Losses (left) and the discriminator's real/fake accuracy (right) against step.

    The right panel draws the 0.5 line: a healthy adversarial game drifts towards it,
    a discriminator stuck near 1.0 means the generator has lost.
    """
    if metrics is None or metrics.empty or "step" not in metrics:
        return None
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.2))
    loss = metrics.melt(id_vars="step", value_vars=[c for c in ("loss_d", "loss_g") if c in metrics],
                        var_name="loss", value_name="value").dropna()
    if not loss.empty:
        sns.lineplot(data=loss, x="step", y="value", hue="loss", ax=ax_loss, linewidth=1)
    ax_loss.set_title("Losses")
    ax_loss.set_xlabel("Training step")
    ax_loss.set_ylabel("Loss")
    _legend_outside(ax_loss)
    acc_cols = [c for c in ("acc_real", "acc_fake", "acc_aux") if c in metrics
                and pd.to_numeric(metrics[c], errors="coerce").notna().any()]
    acc = metrics.melt(id_vars="step", value_vars=acc_cols, var_name="accuracy",
                       value_name="value").dropna()
    acc["value"] = pd.to_numeric(acc["value"], errors="coerce")
    if not acc.empty:
        sns.lineplot(data=acc, x="step", y="value", hue="accuracy", ax=ax_acc, linewidth=1)
    ax_acc.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    ax_acc.set_ylim(-0.02, 1.02)
    ax_acc.set_title("Discriminator accuracy (0.5 = equilibrium)")
    ax_acc.set_xlabel("Training step")
    ax_acc.set_ylabel("Accuracy (share correct)")
    _legend_outside(ax_acc)
    fig.tight_layout()
    return figure_data_uri(fig, dpi=DPI)


def share_comparison(train: dict[str, float], generated: dict[str, float],
                     title: str = "Class shares: training vs generated") -> str | None:
    """Grouped bars of the share of each class (or domain) in training vs generated samples."""
    keys = list(dict.fromkeys(list(train) + list(generated)))
    if not keys:
        return None
    rows = [{"name": str(k), "set": "training", "share": float(train.get(k, 0.0))} for k in keys]
    rows += [{"name": str(k), "set": "generated", "share": float(generated.get(k, 0.0))} for k in keys]
    df = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(min(12, max(4.2, 2 + 0.35 * len(keys))), 2.8))
    sns.barplot(data=df, x="name", y="share", hue="set", ax=ax,
                palette={"training": "#8da0cb", "generated": "#fc8d62"})
    ax.set_title(title)
    ax.set_xlabel("")
    ax.set_ylabel("Share of images")
    _legend_outside(ax)
    fig.tight_layout()
    return figure_data_uri(fig, dpi=DPI)


def metric_vs_count(per_class: pd.DataFrame, metric: str, rho: float | None = None) -> str | None:
    """Scatter of a per-class metric against the class's training count, classes labelled."""
    if per_class is None or metric not in per_class or "train_count" not in per_class:
        return None
    df = per_class[["class_name", "train_count", metric]].copy()
    df[metric] = pd.to_numeric(df[metric], errors="coerce")
    df["train_count"] = pd.to_numeric(df["train_count"], errors="coerce")
    df = df.dropna()
    if len(df) < 2:
        return None
    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    hue = "collapsed" if "collapsed" in per_class else None
    if hue:
        df["collapsed"] = per_class.loc[df.index, "collapsed"].astype(bool).map(
            {True: "collapsed", False: "ok"})
    sns.scatterplot(data=df, x="train_count", y=metric, hue=hue, ax=ax,
                    palette={"ok": "#4c72b0", "collapsed": "#c44e52"} if hue else None, s=30)
    for _, r in df.iterrows():
        ax.annotate(str(r["class_name"])[:8], (r["train_count"], r[metric]), fontsize=MIN_POINTS,
                    xytext=(2, 2), textcoords="offset points")
    if df["train_count"].max() > 10 * max(1, df["train_count"].min()):
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    title = f"Spearman ρ = {rho:.2f}" if rho is not None and math.isfinite(rho) else None
    ax.set_xlabel(axis_title("train_count"))
    _y_title(ax, axis_title(metric))
    if title:
        ax.set_title(title)
    if ax.get_legend() is not None:
        _legend_outside(ax)
    fig.tight_layout()
    return figure_data_uri(fig, dpi=DPI)


def _run_identity(runs: pd.DataFrame) -> tuple[list[str], list[Any]]:
    """Each run's arm and seed (a run outside a study is its own arm, seed 0)."""
    arms = [str(a) if a is not None and a == a else str(r)
            for a, r in zip(runs.get("arm", runs["run"]), runs["run"])]
    seeds = [s if s is not None and s == s else 0 for s in runs.get("seed", [0] * len(runs))]
    return arms, seeds


def _legend_below(fig, handles: list) -> None:
    """Lay the panels out and put one legend below them, in as many columns as fit the
    figure's width (the figure grows by the legend's rows, never in width)."""
    labels = [h.get_label() for h in handles]
    width = fig.get_figwidth()
    per_column = 0.6 + 0.085 * max(len(t) for t in labels)  # inches at 10 pt, with the marker
    ncol = max(1, min(len(labels), int(width // per_column)))
    rows = -(-len(labels) // ncol)
    extra = 0.32 * rows + 0.2
    height = fig.get_figheight()
    fig.set_figheight(height + extra)
    fig.tight_layout(rect=(0, extra / (height + extra), 1, 1))
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncol=ncol,
               fontsize=MIN_POINTS, frameon=False)


def _identity_legend(fig, colours: dict[str, Any], markers: dict[Any, str]) -> None:
    """One legend below the panels: each arm's colour, then each seed's marker (grey)."""
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], color=c, marker="o", linestyle="", label=a) for a, c in colours.items()]
    if len(markers) > 1:
        handles += [Line2D([], [], color="#555555", marker=m, linestyle="", label=f"seed {s}")
                    for s, m in markers.items()]
    _legend_below(fig, handles)


def runs_metric_grid(runs: pd.DataFrame, metrics: list[str], factors: list[str]) -> str | None:
    """With several runs: each whole-set metric against each run property (one panel per
    pair, two a row), one point per run: its arm's colour and its seed's marker."""
    metrics = [m for m in metrics if m in runs and pd.to_numeric(runs[m], errors="coerce").notna().any()]
    factors = [f for f in factors if f in runs and pd.to_numeric(runs[f], errors="coerce").notna().any()]
    if len(runs) < 2 or not metrics or not factors:
        return None
    arms, seeds = _run_identity(runs)
    colours, markers = arm_colours(arms), seed_markers(seeds)
    pairs = [(m, f) for m in metrics for f in factors]
    fig, axes = _grid(len(pairs), height=3.2)
    for ax, (m, f) in zip(axes, pairs):
        x, y = _finite(runs[f]), _finite(runs[m])
        for k, (xv, yv) in enumerate(zip(x, y)):
            if math.isfinite(xv) and math.isfinite(yv):
                ax.scatter([xv], [yv], color=colours[arms[k]], marker=markers[seeds[k]], s=40)
        if f == "images" and np.nanmax(x) > 10 * max(1.0, np.nanmin(x)):
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # decade labels only
        ax.set_xlabel(axis_title(f))
        _y_title(ax, axis_title(m))
    _identity_legend(fig, colours, markers)
    return figure_data_uri(fig, dpi=DPI)


def data_efficiency_curve(rows: Sequence[dict[str, Any]]) -> str | None:
    """A sweep's curve: each metric (one panel, two panels a row) against the swept factor,
    the mean over seeds as a line and its interval as a band (rows as in curve.csv), a tick
    at every swept value, axis titles in words."""
    df = pd.DataFrame([r for r in rows if not r.get("class_group")])  # whole-set rows only
    if df.empty or not pd.to_numeric(df["value"], errors="coerce").notna().all():
        return None
    metrics = list(dict.fromkeys(df["metric"]))
    sweeps = list(dict.fromkeys(df["sweep"]))
    colours = arm_colours(sweeps)
    several = len(sweeps) > 1
    fig, axes = _grid(len(metrics))
    factor = str(df["factor"].iloc[0])
    for ax, metric in zip(axes, metrics):
        values = []
        for sweep, part in df[df["metric"] == metric].groupby("sweep", sort=False):
            part = part.sort_values("value")
            x = part["value"].astype(float).to_numpy()
            values += list(x)
            ax.plot(x, _finite(part["mean"]), marker="o", ms=5, color=colours[sweep], label=str(sweep))
            lo, hi = _finite(part["ci_low"]), _finite(part["ci_high"])
            ax.fill_between(x, lo, hi, alpha=0.2, color=colours[sweep])
            if x.min() > 0 and x.max() > 10 * x.min():
                ax.set_xscale("log")
        _ticks_at(ax, values)
        ax.set_xlabel(axis_title(factor))
        _y_title(ax, axis_title(metric))
    if several:
        _legend_below(fig, axes[0].get_legend_handles_labels()[0])
    else:
        fig.tight_layout()
    return figure_data_uri(fig, dpi=DPI)


#: Axis titles of the class-group curve's metrics (a group's value, datakit.study.class_groups).
GROUP_TITLES = {
    "label_fidelity": "Label fidelity (mean over the group's classes)",
    "recall": "Recall (mean over the group's classes)",
    "generated_share": "Generated share of the group (share of samples)",
    "generated_share_ratio": "Group's generated ÷ training share",
}


def class_group_curve(rows: Sequence[dict[str, Any]], groups: dict[str, list[str]] | None = None
                      ) -> str | None:
    """Each class group's curve along a sweep (rows as in curve.csv with ``class_group``
    set): one panel per metric, one line per group (the mean over seeds) with its interval as
    a band, a tick at every swept value; the share ratio's panel marks 1 (share kept).
    ``groups``: {group: classes}, named in the legend."""
    df = pd.DataFrame([r for r in rows if r.get("class_group")])
    if df.empty or not pd.to_numeric(df["value"], errors="coerce").notna().all():
        return None
    metrics = list(dict.fromkeys(df["metric"]))
    names = list(dict.fromkeys(df["class_group"]))
    colours = dict(zip(names, sns.color_palette("Dark2", max(3, len(names)))))
    several = df["sweep"].nunique() > 1
    fig, axes = _grid(len(metrics))
    factor = str(df["factor"].iloc[0])
    for ax, metric in zip(axes, metrics):
        values = []
        for (sweep, group), part in df[df["metric"] == metric].groupby(
                ["sweep", "class_group"], sort=False):
            part = part.sort_values("value")
            x = part["value"].astype(float).to_numpy()
            values += list(x)
            classes = (groups or {}).get(group)
            label = f"{group} ({', '.join(classes)})" if classes else str(group)
            ax.plot(x, _finite(part["mean"]), marker="o", ms=5, color=colours[group],
                    linestyle="-" if not several else ["-", "--", ":"][hash(sweep) % 3],
                    label=f"{sweep}: {label}" if several else label)
            ax.fill_between(x, _finite(part["ci_low"]), _finite(part["ci_high"]), alpha=0.2,
                            color=colours[group])
            if x.min() > 0 and x.max() > 10 * x.min():
                ax.set_xscale("log")
        if metric == "generated_share_ratio":
            ax.axhline(1.0, color="#555555", linewidth=1, linestyle="--")
        _ticks_at(ax, values)
        ax.set_xlabel(axis_title(factor))
        _y_title(ax, GROUP_TITLES.get(metric, axis_title(metric)))
    _legend_below(fig, axes[0].get_legend_handles_labels()[0])
    return figure_data_uri(fig, dpi=DPI)


def arms_with_intervals(arms: Sequence[dict[str, Any]], metrics: Sequence[str],
                        seeds: dict[str, dict[str, list[tuple[Any, float]]]],
                        labels: dict[str, str]) -> str | None:
    """Each metric (one panel, two a row) across the study's arms: the mean over seeds with its
    95% interval as an error bar in the arm's colour, and each seed's own value beside it in
    its seed's marker. ``seeds``: {arm: {metric: [(seed, value), ...]}}."""
    metrics = [m for m in metrics if any((a.get("metrics") or {}).get(m) for a in arms)]
    if not arms or not metrics:
        return None
    names = [str(a["arm"]) for a in arms]
    colours = arm_colours(names)
    markers = seed_markers([s for a in seeds.values() for pts in a.values() for s, _ in pts])
    fig, axes = _grid(len(metrics), height=3.6)
    for ax, m in zip(axes, metrics):
        for i, a in enumerate(arms):
            s = (a.get("metrics") or {}).get(m) or {}
            mean, lo, hi = (s.get(f) for f in ("mean", "ci_low", "ci_high"))
            for seed, v in seeds.get(a["arm"], {}).get(m, []):
                ax.scatter([i + 0.18], [v], color=colours[a["arm"]], marker=markers[seed], s=28,
                           alpha=0.7, zorder=2)
            if mean is None or not math.isfinite(mean):
                continue
            err = None
            if lo is not None and hi is not None:
                err = [[mean - lo], [hi - mean]]
            ax.errorbar([i], [mean], yerr=err, fmt="o", color=colours[a["arm"]], capsize=4,
                        ms=7, zorder=3)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right")
        ax.set_xlim(-0.5, len(names) - 0.5)
        ax.set_xlabel("Arm (mean over seeds, 95% interval; dots: seeds)")
        _y_title(ax, axis_title(m) if m not in labels or m in METRIC_TITLES else labels[m])
    _identity_legend(fig, colours, markers)
    return figure_data_uri(fig, dpi=DPI)


def confusion_picture(share: np.ndarray, classes: Sequence[str], title: str) -> str | None:
    """A confusion matrix too large for a table: row shares as a heatmap, classes on both axes."""
    k = len(classes)
    if k == 0:
        return None
    side = min(10.0, max(3.4, 2.0 + 0.14 * k))
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    sns.heatmap(share, ax=ax, cmap="Blues", vmin=0, vmax=1, square=True,
                xticklabels=list(classes), yticklabels=list(classes),
                cbar_kws={"label": "share of the row"})
    ax.tick_params(labelsize=MIN_POINTS)
    ax.set_xlabel("judge's reading")
    ax.set_ylabel("label")
    ax.set_title(title, fontsize=MIN_POINTS + 1)
    fig.tight_layout()
    return figure_data_uri(fig, dpi=DPI)
