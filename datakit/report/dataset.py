"""The data-audit page: what is in one or several manifests, before any training.

``datakit stats MANIFEST... --html report.html`` writes a self-contained page (figures,
example images and CSS inline, no network) with, per manifest: class counts as bars,
domain/subset/split shares, balance measures, a grid of random examples per class, the
duplicate and leakage findings, and the composition history from the sidecar.

The per-manifest part is reusable: :func:`composition_section` returns plain data (figure
URIs, tables as lists of dicts, history) and ``templates/_composition.html`` holds the jinja
macro ``composition_section(section)`` that renders it, so the run-audit report can show the
training set of a run exactly as this page does::

    from datakit.report.dataset import composition_section, jinja_environment, page_css
    env = jinja_environment()          # loader on datakit/report/templates, autoescape on
    # in a template:  {% from "_composition.html" import composition_section %}
    #                 {{ composition_section(section) }}

Every string from data (class names, file paths, commands) is escaped by jinja's autoescape.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # figures are rendered to PNG bytes only

import jinja2  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from datakit._core.atomic import atomic_write_text
from datakit.errors import DatakitError  # noqa: E402
from datakit.label_issues import check_issues_belong  # noqa: E402
from datakit.manifest.model import Manifest
from datakit.manifest.read import read_manifest
from datakit.manifest.stats import manifest_stats
from datakit.report.inline import array_data_uri, figure_data_uri, grid_data_uri  # noqa: E402
from datakit.report.numbers import fmt

TEMPLATES = Path(__file__).parent / "templates"
DPI = 80
EXAMPLES_PER_CLASS = 8
#: Rows of a label-issues table shown (with thumbnails) on the page.
LABEL_ISSUES_SHOWN = 24


# ---------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------
def _label(text: Any) -> str:
    # matplotlib reads $...$ as mathtext: a class name with a dollar sign must stay literal
    return str(text).replace("$", r"\$")


def class_count_figure(stats: dict[str, Any], title: str = "Images per class") -> str | None:
    """Seaborn bars of images per class, stacked by split when there are several splits."""
    counts = stats.get("class_counts") or {}
    if not counts:
        return None
    classes = list(counts)
    by_split = stats.get("class_counts_by_split") or {}
    rows = [{"class": i, "split": str(s), "images": by_split[s].get(c, 0)}
            for s in by_split for i, c in enumerate(classes)] or \
           [{"class": i, "split": "all", "images": n} for i, n in enumerate(counts.values())]
    df = pd.DataFrame(rows)
    several = df["split"].nunique() > 1
    fig, ax = plt.subplots(figsize=(min(12, 2 + 0.22 * len(classes)), 2.8))
    sns.histplot(df, x="class", weights="images", hue="split" if several else None, multiple="stack",
                 discrete=True, shrink=0.8, palette="deep" if several else None, ax=ax,
                 legend=several, linewidth=0)
    ax.set_xticks(range(len(classes)))
    ax.set_xticklabels([_label(c) for c in classes], fontsize=7 if len(classes) > 20 else 9)
    ax.set_xlim(-0.6, len(classes) - 0.4)
    ax.set_xlabel("class")
    ax.set_ylabel("images")
    ax.set_title(title)
    if several:
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=8)
    sns.despine(fig)
    fig.tight_layout()
    return figure_data_uri(fig, dpi=DPI)


def share_figure(stats: dict[str, Any]) -> str | None:
    """Horizontal 100% bars: the share of each domain, subset and split."""
    parts = [("domain", stats.get("domain_counts") or {}), ("subset", stats.get("subset_counts") or {}),
             ("split", stats.get("split_counts") or {})]
    parts = [(k, v) for k, v in parts if v]
    if not parts:
        return None
    fig, axes = plt.subplots(len(parts), 1, figsize=(6, 0.42 * len(parts) + 0.3), squeeze=False)
    for ax, (kind, counts) in zip(axes[:, 0], parts):
        total = sum(counts.values())
        left = 0.0
        colours = sns.color_palette("pastel", n_colors=len(counts))
        for colour, (name, n) in zip(colours, counts.items()):
            share = n / total
            ax.barh(0, share, left=left, color=colour, edgecolor="white")
            if share > 0.08:
                ax.text(left + share / 2, 0, _label(f"{name} {share:.0%}"), ha="center", va="center", fontsize=8)
            left += share
        ax.set_xlim(0, 1)
        ax.set_yticks([0])
        ax.set_yticklabels([kind])
        ax.set_xticks([])
        sns.despine(ax=ax, left=True, bottom=True)
    fig.tight_layout()
    return figure_data_uri(fig, dpi=DPI)


def intensity_figure(stats: dict[str, Any]) -> str | None:
    """Pixel-intensity histograms, one line per subset (dark-on-light vs light-on-dark shows here)."""
    intensity = stats.get("intensity") or {}
    if not intensity:
        return None
    fig, ax = plt.subplots(figsize=(5, 2.4))
    for name, s in intensity.items():
        hist = np.asarray(s["histogram"])
        centres = (np.arange(len(hist)) + 0.5) * (256 / len(hist))
        ax.plot(centres, hist, marker="o", markersize=3, label=_label(name))
    ax.set_xlabel("pixel value")
    ax.set_ylabel("fraction of pixels")
    ax.set_title("Intensity per subset")
    ax.legend(fontsize=8)
    sns.despine(fig)
    fig.tight_layout()
    return figure_data_uri(fig, dpi=DPI)


# ---------------------------------------------------------------------------------------
# the reusable per-manifest section
# ---------------------------------------------------------------------------------------
def _examples(manifest: Manifest, per_class: int, seed: int) -> list[dict[str, Any]]:
    """A random row of example images for every class (seeded, so pages are reproducible)."""
    rng = np.random.default_rng(seed)
    table = manifest.table
    out = []
    for cls in manifest.vocabulary:
        rows = table.index[table["class_name"] == cls].to_numpy()
        if len(rows) == 0:
            out.append({"class_name": cls, "count": 0, "uri": None})
            continue
        pick = np.sort(rng.choice(rows, size=min(per_class, len(rows)), replace=False))
        images = manifest.images(table["row"].to_numpy()[pick])
        out.append({"class_name": cls, "count": int(len(rows)),
                    "uri": grid_data_uri(images, ncols=per_class, scale=2)})
    return out


def _with_pictures(manifest: Manifest, finding: dict[str, Any] | None, limit: int = 5) -> dict[str, Any] | None:
    """A copy of a duplicate/leak finding whose first examples carry a strip of their images."""
    if not finding:
        return finding
    row_of = None
    examples = []
    for i, ex in enumerate(finding.get("examples") or []):
        ex = dict(ex)
        if i < limit:
            if row_of is None:
                row_of = pd.Series(manifest.table["row"].to_numpy(), index=manifest.table["id"].to_numpy())
            rows = row_of.reindex(ex["ids"][:8]).dropna().astype(int).to_numpy()
            ex["uri"] = grid_data_uri(manifest.images(rows), ncols=8, scale=1) if len(rows) else None
        examples.append(ex)
    return {**finding, "examples": examples}


def _history(meta: dict[str, Any]) -> list[dict[str, Any]]:
    steps = []
    for i, op in enumerate(meta.get("operations") or [], start=1):
        params = {k: v for k, v in op.items() if k != "op"}
        steps.append({"step": i, "op": op.get("op", "?"),
                      "params": ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in params.items())})
    return steps


def _table(counts: dict[str, int], key: str) -> list[dict[str, Any]]:
    total = sum(counts.values()) or 1
    return [{key: k, "images": int(v), "share": f"{v / total:.1%}"} for k, v in counts.items()]


def _sizes(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per subset: original image sizes and mean intensity."""
    rows = []
    for subset, sz in (stats.get("image_size") or {}).items():
        inten = (stats.get("intensity") or {}).get(subset, {})
        w, h = sz["width"], sz["height"]
        rows.append({
            "subset": subset,
            "median": f"{w['q50']:g}×{h['q50']:g}",
            "range": f"{w['q0']:g}–{w['q100']:g} × {h['q0']:g}–{h['q100']:g}",
            "most_common": ", ".join(f"{k} ({v})" for k, v in sz.get("most_common", {}).items()),
            "mean_intensity": f"{inten.get('mean', float('nan')):.1f}",
        })
    return rows


def label_issues_section(manifest: Manifest, issues: pd.DataFrame | None,
                         limit: int = LABEL_ISSUES_SHOWN) -> dict[str, Any] | None:
    """The top rows of a label-issues table (``datakit label-issues``) with thumbnails."""
    if issues is None:
        return None
    check_issues_belong(manifest, issues)
    top = issues.sort_values("score", kind="stable").head(limit)
    rows = []
    for r in top.itertuples(index=False):
        rows.append({"rank": int(getattr(r, "rank", len(rows) + 1)), "id": r.id,
                     "class_name": r.class_name, "predicted_class_name": r.predicted_class_name,
                     "score": f"{float(r.score):.3f}",
                     "uri": array_data_uri(manifest.images(np.asarray([r.row]))[0], scale=3)})
    return {"count": int(len(issues)), "top": rows}


def composition_section(manifest: Manifest | str | os.PathLike, *, stats: dict[str, Any] | None = None,
                        examples_per_class: int = EXAMPLES_PER_CLASS, seed: int = 0,
                        low_count: int = 10, label_issues: pd.DataFrame | None = None) -> dict[str, Any]:
    """Everything the page shows about one manifest, as plain data for a template.

    Args:
        manifest: an opened manifest or its path.
        stats: its statistics (default: recomputed from the pixels, with ``low_count``).
        examples_per_class: example images per class in the grid.
        seed: seed of the example draw.

    Returns a dict with keys ``name``, ``path``, ``checksum``, ``images``, ``geometry``,
    ``created``, ``command``, ``figures`` (``class_counts``, ``shares``, ``intensity``: data
    URIs or None), ``balance``, ``classes``, ``domains``, ``subsets``, ``splits``, ``sizes``
    (tables as lists of dicts), ``missing_classes``, ``low_count_classes``, ``examples``,
    ``duplicates``, ``leakage``, ``history``, ``parents``, ``seed``, ``label_issues`` (None
    unless a label-issues table is given) and ``stats`` (raw).
    This signature is stable: the run-audit report embeds it.
    """
    m = manifest if isinstance(manifest, Manifest) else read_manifest(manifest)
    s = stats if stats is not None else manifest_stats(m, low_count=low_count)
    g = m.geometry
    b = s["balance"]
    by_split = s.get("class_counts_by_split") or {}
    classes = []
    total = max(1, s["images"])
    for c, n in s["class_counts"].items():
        row = {"class_name": c, "images": int(n), "share": f"{n / total:.1%}"}
        row["by_split"] = {sp: int(by_split[sp].get(c, 0)) for sp in by_split}
        classes.append(row)
    meta = m.meta
    return {
        "name": m.name,
        "path": str(m.path),
        "checksum": m.checksum,
        "images": int(s["images"]),
        "geometry": f"{g.height}×{g.width}×{g.channels}",
        "created": meta.get("created", ""),
        "command": meta.get("command", ""),
        "figures": {"class_counts": class_count_figure(s), "shares": share_figure(s),
                    "intensity": intensity_figure(s)},
        "balance": [
            {"measure": "classes", "value": str(len(s["class_counts"]))},
            # one rounding for every number of a page (report.numbers.fmt), and the rows it is
            # of said: a run's page also quotes its training rows' own ratio
            {"measure": f"imbalance ratio (max/min), all {int(s['images']):,} images",
             "value": fmt(b['imbalance_ratio'])},
            {"measure": "normalised entropy (1 = balanced)", "value": fmt(b['normalised_entropy'])},
            {"measure": "Gini coefficient (0 = balanced)", "value": fmt(b['gini'])},
        ],
        "classes": classes,
        "split_names": list(by_split),
        "domains": _table(s["domain_counts"], "domain"),
        "subsets": _table(s["subset_counts"], "subset"),
        "splits": _table(s["split_counts"], "split"),
        "sizes": _sizes(s),
        "missing_classes": list(s["missing_classes"]),
        "low_count_classes": list(s["low_count_classes"]),
        "low_count_threshold": s.get("low_count_threshold", low_count),
        "examples": _examples(m, examples_per_class, seed),
        "duplicates": {"exact": _with_pictures(m, s.get("exact_duplicates")),
                       "near": _with_pictures(m, s.get("near_duplicates"))},
        "leakage": {k: _with_pictures(m, v) for k, v in (s.get("leakage") or {}).items()},
        "history": _history(meta),
        "parents": [{"name": p.get("name", ""), "path": p.get("path", ""),
                     "checksum": p.get("checksum", "")} for p in meta.get("parents") or []],
        "seed": meta.get("seed"),
        "label_issues": label_issues_section(m, label_issues),
        "stats": s,
    }


# ---------------------------------------------------------------------------------------
# the page
# ---------------------------------------------------------------------------------------
def jinja_environment() -> jinja2.Environment:
    """A jinja environment on datakit's report templates, autoescape on for every template."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                              trim_blocks=True, lstrip_blocks=True)


def page_css() -> str:
    """The page's stylesheet (also styles the composition section), to inline in a <style>."""
    return (TEMPLATES / "dataset.css").read_text()


def render_dataset_report(manifests: Sequence[Manifest | str | os.PathLike], out: str | os.PathLike, *,
                          low_count: int = 10, seed: int = 0,
                          examples_per_class: int = EXAMPLES_PER_CLASS,
                          label_issues: Sequence[pd.DataFrame | None] = ()) -> Path:
    """Write the data-audit page for one or several manifests (side by side) to ``out``.

    ``label_issues`` gives each manifest's label-issues table (in order; missing = none):
    its top rows are shown with thumbnails. The file is written atomically (temporary
    file, then rename) and is self-contained.
    """
    issues = list(label_issues) + [None] * (len(manifests) - len(label_issues))
    sections = [composition_section(m, low_count=low_count, seed=seed,
                                    examples_per_class=examples_per_class, label_issues=li)
                for m, li in zip(manifests, issues)]
    html = jinja_environment().get_template("dataset.html").render(
        sections=sections, css=page_css(),
        generated=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, html)
    except OSError as e:
        raise DatakitError(f"Cannot write the data-audit page {out} ({e.strerror or e}); "
                           "choose a writable path with --html.") from e
    return out
