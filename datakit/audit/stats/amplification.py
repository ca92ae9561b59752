"""Bias amplification: do generated samples over- or under-represent classes (and domains)?

Shares of generated samples per class (the conditioning label of conditional runs, the
judge's reading for unconditional ones) against the training shares: a ratio per class
(1 = faithful, >1 amplified, <1 suppressed) and divergences between the two
distributions. The same for domains in mixed manifests, read by the judge's domain head
(does a GoodImg+Fnt GAN drift to fonts?).
"""
from __future__ import annotations

import numpy as np

EPS = 1e-12


def shares(codes: np.ndarray, n: int) -> np.ndarray:
    """Share of each code 0..n-1 among ``codes`` (codes outside that range are ignored)."""
    codes = np.asarray(codes, dtype=np.int64)
    codes = codes[(codes >= 0) & (codes < n)]
    counts = np.bincount(codes, minlength=n).astype(np.float64)
    return counts / counts.sum() if counts.sum() else counts


def divergences(generated: np.ndarray, train: np.ndarray) -> dict[str, float]:
    """KL(generated‖train) (nats, smoothed by 1e-12), Jensen-Shannon (bits, 0..1), total variation."""
    p, q = np.asarray(generated, np.float64), np.asarray(train, np.float64)
    ps, qs = (p + EPS) / (p + EPS).sum(), (q + EPS) / (q + EPS).sum()
    kl = float(np.sum(ps * np.log(ps / qs)))
    m = (ps + qs) / 2
    js = float(0.5 * np.sum(ps * np.log2(ps / m)) + 0.5 * np.sum(qs * np.log2(qs / m)))
    return {"kl": kl, "js": max(js, 0.0), "tv": float(0.5 * np.abs(p - q).sum())}


def share_table(names: list[str], train_codes: np.ndarray, generated_codes: np.ndarray,
                basis: str, judged_codes: np.ndarray | None = None) -> dict:
    """Train vs generated shares per name, with ratios and divergences.

    Args:
        names: vocabulary (code i is ``names[i]``).
        train_codes / generated_codes: integer codes of the training rows and generated samples.
        basis: how generated samples got their codes ("conditioning labels", "judge predictions").
        judged_codes: the judge's reading of the generated samples, reported alongside when
            ``generated_codes`` are conditioning labels.
    """
    n = len(names)
    t, g = shares(train_codes, n), shares(generated_codes, n)
    j = shares(judged_codes, n) if judged_codes is not None else None
    rows = []
    for i, name in enumerate(names):
        row = {"name": name, "code": i, "train_share": float(t[i]), "generated_share": float(g[i]),
               "ratio": float(g[i] / t[i]) if t[i] > 0 else None}
        if j is not None:
            row["judged_share"] = float(j[i])
            row["judged_ratio"] = float(j[i] / t[i]) if t[i] > 0 else None
        rows.append(row)
    out = {"basis": basis, "rows": rows, "divergence": divergences(g, t),
           "generated_count": int(len(generated_codes))}
    if j is not None:
        out["judged_divergence"] = divergences(j, t)
    out.update(extreme_classes(rows))
    return out


def extreme_classes(rows: list[dict]) -> dict:
    """``most_amplified`` / ``most_suppressed`` class names from share-table rows.

    A class with no training images but some generated samples is amplified without
    bound (its ratio is None, not a number): it is the most amplified class. Classes
    absent from both are left out. Empty when no class can be named.
    """
    unbounded = [r for r in rows if r["train_share"] == 0 and r["generated_share"] > 0]
    finite = [r for r in rows if r["ratio"] is not None]
    out = {}
    if unbounded:
        out["most_amplified"] = max(unbounded, key=lambda r: r["generated_share"])["name"]
    elif finite:
        out["most_amplified"] = max(finite, key=lambda r: r["ratio"])["name"]
    if finite:
        out["most_suppressed"] = min(finite, key=lambda r: r["ratio"])["name"]
    return out


def confusion_counts(true: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    """n×n counts: row = true label, column = predicted label (codes outside 0..n-1 dropped)."""
    true, pred = np.asarray(true), np.asarray(pred)
    ok = (true >= 0) & (true < n) & (pred >= 0) & (pred < n)
    return np.bincount(true[ok] * n + pred[ok], minlength=n * n).reshape(n, n)
