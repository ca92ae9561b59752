"""Dataset statistics: class balance, subsets, domains, splits (stored in every sidecar).

Extended by the curation work: size/intensity distributions, exact and near duplicates,
split leakage, text and HTML rendering.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


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


def compute_stats(table: pd.DataFrame, pixels: np.ndarray, *, classes: list[str] | None = None,
                  low_count: int = 10) -> dict[str, Any]:
    """Statistics of a manifest's rows and pixels, as a JSON-ready dictionary."""
    per_class = table["class_name"].value_counts()
    vocab = list(classes) if classes else sorted(per_class.index)
    class_counts = {c: int(per_class.get(c, 0)) for c in vocab}
    return {
        "images": int(len(table)),
        "class_counts": class_counts,
        "subset_counts": {k: int(v) for k, v in table["subset"].value_counts().sort_index().items()},
        "domain_counts": {k: int(v) for k, v in table["domain"].value_counts().sort_index().items()},
        "split_counts": {k: int(v) for k, v in table["split"].value_counts().sort_index().items()},
        "balance": balance(class_counts),
        "missing_classes": [c for c, n in class_counts.items() if n == 0],
        "low_count_classes": [c for c, n in class_counts.items() if 0 < n < low_count],
        "low_count_threshold": low_count,
    }
