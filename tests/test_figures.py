"""Figures you can read: panels at least 320 px wide, axis titles in words (never a field name),
a tick at every swept value, text of at least 10 pt, no figure under 300 px, and one colour per
arm and one marker per seed (measured on the matplotlib figures before they are encoded)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from datakit.report import figures

#: The metrics of the committed mnist_size curve: 7 panels of about 130 px before.
CURVE_METRICS = ("fd", "kid", "precision", "recall", "density", "coverage", "label_fidelity")
SIZES = (500, 2000, 10000, 60000)


@pytest.fixture
def drawn(monkeypatch):
    """Every figure a function draws, kept open instead of encoded."""
    kept = []
    monkeypatch.setattr(figures, "figure_data_uri", lambda fig, dpi: kept.append(fig) or "data:,")
    yield kept
    for fig in kept:
        plt.close(fig)


def _shown_px(fig, ax=None) -> float:
    fig.canvas.draw()
    width_in = fig.get_figwidth() * (ax.get_position().width if ax is not None else 1.0)
    return width_in * figures.SHOWN_PPI


def _texts(fig):
    fig.canvas.draw()
    return [t for t in fig.findobj(plt.Text) if t.get_visible() and t.get_text().strip()]


def _readable(fig, fields):
    assert _shown_px(fig) >= figures.MIN_FIGURE_PX
    for t in _texts(fig):
        assert t.get_fontsize() >= figures.MIN_POINTS, (t.get_text(), t.get_fontsize())
    axes = [ax for ax in fig.axes if ax.get_visible()]
    for ax in axes:
        for label in (ax.get_xlabel(), ax.get_ylabel()):
            assert label and label not in fields and "_" not in label, label


def test_the_data_efficiency_curve_is_readable(drawn):
    rows = [{"sweep": "mnist", "factor": "size", "value": v, "metric": m, "mean": 1.0 + i,
             "ci_low": 0.5 + i, "ci_high": 1.5 + i, "n_seeds": 3}
            for m in CURVE_METRICS for i, v in enumerate(SIZES)]
    figures.data_efficiency_curve(rows)
    (fig,) = drawn
    _readable(fig, set(CURVE_METRICS) | {"size"})
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 7
    for ax in axes:
        assert _shown_px(fig, ax) >= figures.MIN_PANEL_PX
        # a labelled tick at every swept size, not only at the decades
        assert [t.get_text() for t in ax.get_xticklabels()] == ["500", "2,000", "10,000", "60,000"]
        assert not ax.xaxis.get_minorticklabels() or not any(
            t.get_text() for t in ax.xaxis.get_minorticklabels())
    # a long axis title is broken into lines that fit beside its panel, never cut
    assert axes[-1].get_ylabel() == "Label fidelity (share of samples\nread as their class)"
    assert axes[0].get_xlabel() == "Training-set size (images, before the hold-out)"


def test_runs_have_one_colour_per_arm_and_one_marker_per_seed(drawn):
    arms = ["balanced_acgan", "skewed_acgan", "balanced_dcgan", "skewed_dcgan"]
    runs = pd.DataFrame([{"run": f"{a} (seed {s})", "arm": a, "seed": s, "skew": 1.0 + 9 * (i % 2),
                          "fd": 10.0 + i + s, "recall": 0.5 - 0.01 * i}
                         for i, a in enumerate(arms) for s in range(3)])
    figures.runs_metric_grid(runs, ["fd", "recall"], ["skew"])
    (fig,) = drawn
    _readable(fig, {"fd", "recall", "skew"})
    for ax in (ax for ax in fig.axes if ax.get_visible()):
        assert _shown_px(fig, ax) >= figures.MIN_PANEL_PX
        points = ax.collections
        assert len(points) == 12
        colours = [tuple(c.get_facecolor()[0]) for c in points]
        markers = [c.get_paths()[0].vertices.round(3).tobytes() for c in points]
        by_arm = {a: {colours[3 * i + s] for s in range(3)} for i, a in enumerate(arms)}
        assert all(len(v) == 1 for v in by_arm.values())  # one colour per arm ...
        assert len({next(iter(v)) for v in by_arm.values()}) == 4  # ... and never shared
        by_seed = {s: {markers[3 * i + s] for i in range(4)} for s in range(3)}
        assert all(len(v) == 1 for v in by_seed.values()) and len({next(iter(v)) for v in by_seed.values()}) == 3
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == arms + ["seed 0", "seed 1", "seed 2"]


def test_arms_with_intervals_colour_arms_and_mark_seeds(drawn):
    arms = [{"arm": a, "metrics": {"fd": {"mean": 10.0 + i, "ci_low": 9.0 + i, "ci_high": 11.0 + i},
                                   "precision": {"mean": 0.5, "ci_low": 0.4, "ci_high": 0.6}}}
            for i, a in enumerate(("goodimg", "goodimg_fnt", "fnt"))]
    seeds = {a["arm"]: {"fd": [(s, 10.0 + s) for s in range(3)]} for a in arms}
    figures.arms_with_intervals(arms, ["fd", "precision"], seeds, {"fd": "FD"})
    (fig,) = drawn
    _readable(fig, {"fd", "precision"})
    for ax in (ax for ax in fig.axes if ax.get_visible()):
        assert _shown_px(fig, ax) >= figures.MIN_PANEL_PX


def test_no_small_figure(drawn):
    figures.share_comparison({"a": 0.5, "b": 0.5}, {"a": 0.6, "b": 0.4})
    figures.metric_vs_count(pd.DataFrame({"class_name": ["0", "1", "2"], "train_count": [5, 50, 500],
                                          "coverage": [0.1, 0.5, 0.9]}), "coverage", 0.9)
    import numpy as np
    figures.confusion_picture(np.eye(2), ["0", "1"], "judge")
    assert len(drawn) == 3
    for fig in drawn:
        assert _shown_px(fig) >= figures.MIN_FIGURE_PX
        for t in _texts(fig):
            assert t.get_fontsize() >= figures.MIN_POINTS, t.get_text()


def test_the_class_group_curve_is_readable_with_a_tick_at_every_ratio(drawn):
    ratios = (1, 2, 5, 10, 20)
    metrics = ("label_fidelity", "recall", "generated_share", "generated_share_ratio")
    rows = [{"sweep": "skew", "factor": "skew_ratio", "value": v, "metric": m,
             "mean": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n_seeds": 3, "class_group": g}
            for g in ("majority", "minority") for m in metrics for v in ratios]
    rows.append({"sweep": "skew", "factor": "skew_ratio", "value": 1, "metric": "fd",
                 "mean": 9.0, "ci_low": 8.0, "ci_high": 10.0, "n_seeds": 3, "class_group": None})
    figures.class_group_curve(rows, {"majority": ["0", "1"], "minority": ["8", "9"]})
    (fig,) = drawn
    _readable(fig, set(metrics) | {"skew_ratio"})
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 4  # the whole-set row is the data-efficiency curve's, not this one's
    for ax in axes:
        assert _shown_px(fig, ax) >= figures.MIN_PANEL_PX
        assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "5", "10", "20"]
        assert len(ax.get_lines()) >= 2  # one line per group
    assert axes[0].get_xlabel().startswith("Majority : minority ratio")
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["majority (0, 1)",
                                                                   "minority (8, 9)"]
