"""Composition links: how the make-up of the training set lines up with the metrics.

- Every per-class metric against that class's training count, with Spearman's rank
  correlation (does a class's quality track how many images it had?).
- The whole-set metrics computed against each part (subset or domain) of the training
  manifest, next to that part's share of training (inside one GoodImg+Fnt run: which part
  do the samples resemble?).
"""
from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from datakit.judge import metrics


def metric_vs_train_count(per_class: list[dict], names: tuple[str, ...]) -> dict[str, dict]:
    """Spearman rank correlation of each per-class metric ``names`` with the classes' training counts."""
    out = {}
    for name in names:
        pairs = [(c["train_count"], c.get(name)) for c in per_class
                 if c.get(name) is not None and np.isfinite(c.get(name))]
        entry = {"classes": len(pairs), "spearman_rho": None, "p_value": None}
        if len(pairs) >= 3 and len({p[0] for p in pairs}) > 1 and len({p[1] for p in pairs}) > 1:
            rho, p = spearmanr([p[0] for p in pairs], [p[1] for p in pairs])
            entry.update(spearman_rho=float(rho), p_value=float(p))
        elif len({p[0] for p in pairs}) <= 1:
            entry["note"] = "all classes have the same training count"
        out[name] = entry
    return out


def metrics_per_part(part_names: np.ndarray, reference: np.ndarray, generated: np.ndarray, *,
                     column: str, k: int = 5, generated_share: dict[str, float] | None = None,
                     device=None) -> list[dict]:
    """Whole-set metrics of ``generated`` against each part of the training reference.

    Args:
        part_names: the part (subset or domain value) of each reference row.
        column: "subset" or "domain" (recorded).
        generated_share: the judge's estimate of the generated share per part, when known.
    """
    parts, counts = np.unique(part_names, return_counts=True)
    rows = []
    for part, count in zip(parts, counts):
        ref = reference[part_names == part]
        row = {"column": column, "part": str(part), "train_share": float(count / len(part_names)),
               "reference_count": int(len(ref))}
        if generated_share is not None:
            row["generated_share"] = generated_share.get(str(part))
        if len(ref) > k and len(generated) > k:
            row["fd"] = metrics.fd(ref, generated)
            row.update(metrics.prdc(ref, generated, k=k, device=device))
        rows.append(row)
    return rows
