"""Dataset statistics, stored in every sidecar and printed by ``datakit stats``.

What a manifest holds, before any training: counts per class, subset, domain and split;
class balance (imbalance ratio, normalised entropy, Gini); missing and rare classes;
image-size and intensity distributions per subset; exact duplicates (same pixel sha256),
near-duplicates (perceptual hashes within a small Hamming radius, confirmed by thumbnail
correlation) and leakage (one image, exact or near, in two splits).

Everything is vectorised over the whole pixel store: :func:`compute_stats` runs inside every
ingest and compose, so 70,000 MNIST images must take well under two seconds. The perceptual
hash is a DCT pHash whose resize and DCT are folded into two small matrices, so the whole
batch is hashed with two matrix products (:func:`perceptual_hash`).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from datakit.manifest.duplicates import (
    HASH_SIDE,
    NEAR_RADIUS,
    NEAR_THRESHOLD,
    THUMB_SIDE,
    duplicate_groups,
    linked_groups,
    near_duplicate_groups,
)

#: How many example groups of duplicates / leaks the sidecar keeps (the counts are complete).
MAX_EXAMPLES = 10
QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
INTENSITY_BINS = 16
HISTOGRAM_IMAGES = 4096


# ---------------------------------------------------------------------------------------
# class balance
# ---------------------------------------------------------------------------------------
def balance(counts: dict[str, int] | pd.Series) -> dict[str, float]:
    """Class-balance measures of a count vector: imbalance ratio (max/min over classes
    present), normalised Shannon entropy (1 = perfectly balanced) and Gini coefficient
    (0 = perfectly balanced)."""
    c = np.asarray(list(counts.values()) if isinstance(counts, dict) else counts, dtype=float)
    c = c[c > 0]
    if len(c) == 0:
        return {"imbalance_ratio": float("nan"), "normalised_entropy": float("nan"), "gini": float("nan")}
    p = c / c.sum()
    entropy = float(-(p * np.log(p)).sum() / np.log(len(c))) if len(c) > 1 else 1.0
    s = np.sort(c)
    n = len(s)
    gini = float((2 * np.arange(1, n + 1) - n - 1).dot(s) / (n * s.sum())) if n > 1 else 0.0
    return {"imbalance_ratio": float(s[-1] / s[0]), "normalised_entropy": entropy, "gini": gini}


def _group_examples(table: pd.DataFrame, groups: np.ndarray, mask: np.ndarray | None = None,
                    limit: int = MAX_EXAMPLES) -> list[dict[str, Any]]:
    sel = groups >= 0 if mask is None else (groups >= 0) & mask
    if not sel.any():
        return []
    sub = table.loc[sel, ["id", "class_name", "split"]].assign(group=groups[sel])
    out = []
    for g, rows in sub.groupby("group", sort=False):
        out.append({"size": int(len(rows)), "ids": rows["id"].tolist()[:10],
                    "classes": sorted(set(rows["class_name"])),
                    "splits": sorted(set(rows["split"]))})
        if len(out) >= limit:
            break
    return out


def _duplicate_summary(table: pd.DataFrame, groups: np.ndarray, *,
                       mask: np.ndarray | None = None) -> dict[str, Any]:
    """Counts of duplicate groups: images involved and images that are redundant copies."""
    sel = groups >= 0 if mask is None else (groups >= 0) & mask
    n_groups = int(len(np.unique(groups[sel])))
    n_images = int(sel.sum())
    return {"groups": n_groups, "images": n_images, "redundant": n_images - n_groups,
            "examples": _group_examples(table, groups, mask)}


def _leakage(table: pd.DataFrame, groups: np.ndarray) -> dict[str, Any]:
    """Groups of identical images whose members sit in more than one split."""
    sel = groups >= 0
    if not sel.any():
        return {"groups": 0, "images": 0, "split_pairs": {}, "examples": []}
    sub = pd.DataFrame({"group": groups[sel], "split": table["split"].to_numpy()[sel]})
    splits_per_group = sub.groupby("group")["split"].agg(lambda s: tuple(sorted(set(s))))
    leaking = splits_per_group[splits_per_group.map(len) > 1]
    mask = np.isin(groups, leaking.index.to_numpy())
    pairs: dict[str, int] = {}
    for splits in leaking:
        key = "/".join(splits)
        pairs[key] = pairs.get(key, 0) + 1
    return {"groups": int(len(leaking)), "images": int(mask.sum()), "split_pairs": pairs,
            "examples": _group_examples(table, groups, mask)}


# ---------------------------------------------------------------------------------------
# distributions
# ---------------------------------------------------------------------------------------
def _quantiles(values: np.ndarray) -> dict[str, float]:
    qs = np.quantile(values, QUANTILES) if len(values) else [float("nan")] * len(QUANTILES)
    return {f"q{int(q * 100)}": float(v) for q, v in zip(QUANTILES, qs)}


def _size_summary(rows: pd.DataFrame) -> dict[str, Any]:
    w = rows["orig_width"].to_numpy()
    h = rows["orig_height"].to_numpy()
    common = (pd.Series(w).astype(str) + "x" + pd.Series(h).astype(str)).value_counts().head(5)
    return {"width": _quantiles(w), "height": _quantiles(h),
            "most_common": {k: int(v) for k, v in common.items()}}


def _intensity_summary(images: np.ndarray, means: np.ndarray) -> dict[str, Any]:
    # 16-bin histogram of pixel values (as fractions) + quantiles of per-image means (all
    # images). The histogram reads at most HISTOGRAM_IMAGES evenly spaced images: a
    # distribution summary needs no more, and bincount over 55M pixels costs a third of a second.
    step = max(1, -(-len(images) // HISTOGRAM_IMAGES))
    sample, hist = images[::step], np.zeros(INTENSITY_BINS)
    for s in range(0, len(sample), 256):  # a chunk at a time: bincount widens to int64
        hist += np.bincount(np.asarray(sample[s:s + 256]).reshape(-1) >> 4,
                            minlength=INTENSITY_BINS)
    hist /= max(hist.sum(), 1.0)
    return {"mean": float(means.mean()) if len(means) else float("nan"),
            "image_mean_quantiles": _quantiles(means),
            "histogram": [round(float(x), 6) for x in hist],
            "histogram_bins": INTENSITY_BINS}


def _image_means(images: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Mean pixel value of each image, read a chunk at a time (``images`` may be a store
    reader, see :mod:`datakit.manifest.store`)."""
    out = np.zeros(len(images), dtype=np.float32)
    for s in range(0, len(images), chunk):
        block = np.asarray(images[s:s + chunk])
        out[s:s + chunk] = block.reshape(len(block), -1).mean(axis=1, dtype=np.float32)
    return out


def _counts(col: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in col.value_counts().sort_index().items()}


# ---------------------------------------------------------------------------------------
# the whole thing
# ---------------------------------------------------------------------------------------
def compute_stats(table: pd.DataFrame, pixels: np.ndarray, *, classes: list[str] | None = None,
                  low_count: int = 10) -> dict[str, Any]:
    """Statistics of a manifest's rows and pixels, as a JSON-ready dictionary.

    Args:
        table: the manifest rows (``row`` indexes ``pixels``; ``sha256`` already computed).
        pixels: the N×H×W×C uint8 pixel store (may be memory-mapped).
        classes: the class vocabulary in label order (classes with no rows count as missing).
        low_count: classes with fewer images than this (but some) are listed as rare.

    Returns keys ``images``, ``class_counts``, ``subset_counts``, ``domain_counts``,
    ``split_counts``, ``balance``, ``missing_classes``, ``low_count_classes``,
    ``low_count_threshold``, ``class_counts_by_split``, ``image_size`` and ``intensity``
    (per subset), ``exact_duplicates``, ``near_duplicates`` and ``leakage``.
    """
    table = table.reset_index(drop=True)
    per_class = table["class_name"].value_counts()
    vocab = list(classes) if classes else sorted(per_class.index)
    class_counts = {str(c): int(per_class.get(c, 0)) for c in vocab}
    by_split = {str(s): {str(c): int(n) for c, n in rows["class_name"].value_counts().items()}
                for s, rows in table.groupby("split", sort=True)}

    rows = table["row"].to_numpy()
    contiguous = len(rows) == len(pixels) and (len(rows) == 0 or np.array_equal(rows, np.arange(len(rows))))
    images = pixels if contiguous else np.asarray(pixels[rows])
    n = len(images)
    means = _image_means(images)

    sizes, intensity = {}, {}
    subset_codes, subset_names = pd.factorize(table["subset"], sort=True)
    for i, name in enumerate(subset_names):
        mask = subset_codes == i
        part = images if mask.all() else images[mask]
        sizes[str(name)] = _size_summary(table.loc[mask])
        intensity[str(name)] = _intensity_summary(part, means[mask])

    exact = duplicate_groups(table["sha256"])
    near = (near_duplicate_groups(images, sha256=table["sha256"].to_numpy()) if n
            else np.zeros(0, dtype=np.int64))
    # A near-duplicate group is one whose members are not all byte-identical.
    distinct_sha = pd.Series(table["sha256"].to_numpy()).groupby(near).transform("nunique").to_numpy()
    near_only = (near >= 0) & (distinct_sha > 1)
    linked = linked_groups(exact, near)
    return {
        "images": int(n),
        "class_counts": class_counts,
        "subset_counts": _counts(table["subset"]),
        "domain_counts": _counts(table["domain"]),
        "split_counts": _counts(table["split"]),
        "class_counts_by_split": by_split,
        "balance": balance(class_counts),
        "missing_classes": [c for c, k in class_counts.items() if k == 0],
        "low_count_classes": [c for c, k in class_counts.items() if 0 < k < low_count],
        "low_count_threshold": int(low_count),
        "image_size": sizes,
        "intensity": intensity,
        "exact_duplicates": _duplicate_summary(table, exact),
        "near_duplicates": {**_duplicate_summary(table, near, mask=near_only),
                            "method": f"DCT pHash ({HASH_SIDE * HASH_SIDE - 1} bits) within "
                                      f"{NEAR_RADIUS} bits and "
                                      f"{THUMB_SIDE}x{THUMB_SIDE} correlation >= {NEAR_THRESHOLD}"},
        "leakage": {"exact": _leakage(table, exact), "near": _leakage(table, linked)},
    }


def manifest_stats(manifest, *, low_count: int = 10) -> dict[str, Any]:
    """Recompute the statistics of an opened :class:`~datakit.manifest.Manifest`."""
    return compute_stats(manifest.table, manifest.pixels, classes=manifest.vocabulary,
                         low_count=low_count)


# ---------------------------------------------------------------------------------------
# plain text rendering (``datakit stats``)
# ---------------------------------------------------------------------------------------
def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if v.is_integer():
            return str(int(v))
        return f"{v:.3f}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def stats_rows(stats: dict[str, Any]) -> list[tuple[str, str]]:
    """The (label, value) lines of the text table for one manifest's statistics."""
    b = stats["balance"]
    lines: list[tuple[str, str]] = [("images", str(stats["images"]))]
    for title, key in (("split", "split_counts"), ("domain", "domain_counts"),
                       ("subset", "subset_counts")):
        for k, v in stats[key].items():
            lines.append((f"{title} {k}", str(v)))
    lines += [("classes", str(len(stats["class_counts"]))),
              ("imbalance ratio", _fmt(b["imbalance_ratio"])),
              ("normalised entropy", _fmt(b["normalised_entropy"])),
              ("gini", _fmt(b["gini"])),
              ("missing classes", " ".join(stats["missing_classes"]) or "-"),
              (f"classes < {stats['low_count_threshold']}", " ".join(stats["low_count_classes"]) or "-")]
    for k, v in stats["class_counts"].items():
        lines.append((f"class {k}", str(v)))
    for name, s in stats.get("image_size", {}).items():
        lines.append((f"size {name} (median WxH)",
                      f"{_fmt(s['width']['q50'])}x{_fmt(s['height']['q50'])}"))
    for name, s in stats.get("intensity", {}).items():
        lines.append((f"intensity {name} (mean)", _fmt(s["mean"])))
    ex, nd = stats.get("exact_duplicates"), stats.get("near_duplicates")
    if ex is not None:
        lines.append(("exact duplicates", f"{ex['groups']} groups, {ex['images']} images"))
    if nd is not None:
        lines.append(("near duplicates", f"{nd['groups']} groups, {nd['images']} images"))
    leak = stats.get("leakage")
    if leak is not None:
        for kind in ("exact", "near"):
            pairs = ", ".join(f"{k}: {v}" for k, v in leak[kind]["split_pairs"].items())
            lines.append((f"leakage ({kind})",
                          f"{leak[kind]['groups']} groups" + (f" ({pairs})" if pairs else "")))
    return lines


def format_stats_table(stats_list: Sequence[dict[str, Any]], names: Sequence[str]) -> str:
    """Several manifests' statistics side by side as a plain text table (one column each)."""
    columns = [dict(stats_rows(s)) for s in stats_list]
    labels: list[str] = []
    for s in stats_list:
        for label, _ in stats_rows(s):
            if label not in labels:
                labels.append(label)
    header = ["", *names]
    body = [[label, *(col.get(label, "") for col in columns)] for label in labels]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                              for i, (c, w) in enumerate(zip(r, widths))).rstrip()
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *(fmt(r) for r in body)])
