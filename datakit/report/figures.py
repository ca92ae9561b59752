"""Seaborn/matplotlib figures of the run-audit report, each returned as an inline PNG data URI.

Every function takes plain data (lists, dicts, DataFrames), draws one small figure and
returns ``data:image/png;base64,...`` (see :mod:`datakit.report.inline`), so the page
stays a single self-contained file. Functions return ``None`` when there is nothing to draw.
"""
from __future__ import annotations

import math
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
    fig, ax = plt.subplots(figsize=(min(12, 2 + 0.35 * len(keys)), 2.8))
    sns.barplot(data=df, x="name", y="share", hue="set", ax=ax,
                palette={"training": "#8da0cb", "generated": "#fc8d62"})
    ax.set_title(title)
    ax.set_xlabel("")
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
    title = f"{metric} vs training count"
    if rho is not None and math.isfinite(rho):
        title += f" (Spearman ρ = {rho:.2f})"
    ax.set_title(title)
    if ax.get_legend() is not None:
        _legend_outside(ax)
    fig.tight_layout()
    return figure_data_uri(fig, dpi=DPI)


def runs_metric_grid(runs: pd.DataFrame, metrics: list[str], factors: list[str]) -> str | None:
    """With several runs: each whole-set metric (rows) against each run property (columns),
    one labelled point per run (size, synthetic share, skew...)."""
    metrics = [m for m in metrics if m in runs and pd.to_numeric(runs[m], errors="coerce").notna().any()]
    factors = [f for f in factors if f in runs and pd.to_numeric(runs[f], errors="coerce").notna().any()]
    if len(runs) < 2 or not metrics or not factors:
        return None
    one_factor = len(factors) == 1  # then the metrics go side by side in one row
    shape = (1, len(metrics)) if one_factor else (len(metrics), len(factors))
    fig, axes = plt.subplots(*shape, squeeze=False,
                             figsize=(2.9 * shape[1] + 0.5, 2.3 * shape[0] + 0.3))
    palette = sns.color_palette("tab10", len(runs))
    for i, m in enumerate(metrics):
        for j, f in enumerate(factors):
            ax = axes[0][i] if one_factor else axes[i][j]
            x = _finite(runs[f])
            y = _finite(runs[m])
            for k, (xv, yv) in enumerate(zip(x, y)):
                if math.isfinite(xv) and math.isfinite(yv):
                    ax.scatter([xv], [yv], color=palette[k], s=30, label=str(runs["run"].iloc[k]))
            if f == "images" and np.nanmax(x) > 10 * max(1.0, np.nanmin(x)):
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())  # decade labels only
            if one_factor:
                ax.set_xlabel(f)
                ax.set_ylabel(m)
            else:
                ax.set_xlabel(f if i == len(metrics) - 1 else "")
                ax.set_ylabel(m if j == 0 else "")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper left", fontsize=MIN_POINTS, frameon=False,
                   bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return figure_data_uri(fig, dpi=DPI)


def data_efficiency_curve(rows: Sequence[dict[str, Any]]) -> str | None:
    """A sweep's curve: each metric (one panel) against the swept factor, the mean over
    seeds as a line and its interval as a band (rows as in curve.csv)."""
    df = pd.DataFrame(list(rows))
    if df.empty or not pd.to_numeric(df["value"], errors="coerce").notna().all():
        return None
    metrics = list(dict.fromkeys(df["metric"]))
    fig, axes = plt.subplots(1, len(metrics), squeeze=False,
                             figsize=(2.9 * len(metrics) + 0.5, 2.6))
    for ax, metric in zip(axes[0], metrics):
        for sweep, part in df[df["metric"] == metric].groupby("sweep", sort=False):
            part = part.sort_values("value")
            x = part["value"].astype(float).to_numpy()
            ax.plot(x, _finite(part["mean"]), marker="o", ms=3, label=str(sweep))
            lo, hi = _finite(part["ci_low"]), _finite(part["ci_high"])
            ax.fill_between(x, lo, hi, alpha=0.25)
            if x.min() > 0 and x.max() > 10 * x.min():
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(str(df["factor"].iloc[0]))
        ax.set_title(metric, fontsize=MIN_POINTS + 1)
    if df["sweep"].nunique() > 1:
        _legend_outside(axes[0][-1])
    fig.tight_layout()
    return figure_data_uri(fig, dpi=DPI)


def arms_with_intervals(arms: Sequence[dict[str, Any]], metrics: Sequence[str],
                        seeds: dict[str, dict[str, list[float]]], labels: dict[str, str]) -> str | None:
    """Each metric (one panel) across the study's arms: the mean over seeds with its 95%
    interval as an error bar, and every seed's own value as a small grey dot."""
    metrics = [m for m in metrics if any((a.get("metrics") or {}).get(m) for a in arms)]
    if not arms or not metrics:
        return None
    cols = min(3, len(metrics))
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, squeeze=False, figsize=(3.4 * cols, 3.0 * rows))
    names = [str(a["arm"]) for a in arms]
    for ax, m in zip(axes.flat, metrics):
        k = 1.0  # every metric as the audit writes it (KID in the judge's squared feature units)
        for i, a in enumerate(arms):
            s = (a.get("metrics") or {}).get(m) or {}
            mean, lo, hi = (None if s.get(f) is None else s[f] * k for f in ("mean", "ci_low", "ci_high"))
            pts = [p * k for p in seeds.get(a["arm"], {}).get(m, [])]
            ax.scatter([i] * len(pts), pts, color="#999999", s=12, zorder=2)
            if mean is None or not math.isfinite(mean):
                continue
            err = None
            if lo is not None and hi is not None:
                err = [[mean - lo], [hi - mean]]
            ax.errorbar([i], [mean], yerr=err, fmt="o", color="#4c72b0", capsize=4, zorder=3)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right")
        ax.set_title("KID" if m == "kid" else labels.get(m, m), fontsize=MIN_POINTS + 1)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    fig.tight_layout()
    return figure_data_uri(fig, dpi=DPI)


def confusion_picture(share: np.ndarray, classes: Sequence[str], title: str) -> str | None:
    """A confusion matrix too large for a table: row shares as a heatmap, classes on both axes."""
    k = len(classes)
    if k == 0:
        return None
    side = min(10.0, 2.0 + 0.14 * k)
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
