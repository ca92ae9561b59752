"""Per-class diversity by the Vendi score, against its real-vs-real floor (informational).

The Vendi score (Friedman & Dieng 2023) of n samples is exp of the Shannon entropy of the
eigenvalues of K/n, K the n × n similarity matrix with unit diagonal; here K is the cosine
similarity of judge features, so VS runs from 1 (all samples alike) to n (all orthogonal)
and reads as an effective number of distinct samples. Features are centred on the mean of the
whole training reference first (one fixed shift for every class and both sides): judge features
are non-negative, and uncentred their cosines are all high, which squeezes every class towards 1. K/n = X Xᵀ/n with X the unit-norm
features, whose nonzero eigenvalues are those of Xᵀ X/n (d × d), which is what is computed.

Per class: VS of the class's generated samples against VS of its held-out real images at the
same n (:func:`datakit.audit.stats.floors.floor_test`: size-matched, bootstrap interval of
the difference). ``vendi_ratio`` = generated ÷ held-out is about 1 for a healthy class and
far below 1 for a collapsed one. It fails no class (no failure reason): the collapse and
modes checks decide collapse; this shows beside them in the tables and heatmaps.
"""
from __future__ import annotations

import numpy as np

from datakit.audit import reuse
from datakit.audit.declare import MetricSpec
from datakit.audit.registry import CheckResult
from datakit.audit.stats import floors

NAME = "vendi"

METRICS = (
    MetricSpec("vendi_ratio", "Vendi ratio", "VS×",
               "Vendi score (effective number of distinct samples) of the class's samples ÷ that of "
               "as many held-out real images (1 = as diverse as real)", better="higher",
               floor_test=NAME, heatmap="value"),
    MetricSpec("vendi", "Vendi score", "VS", "Vendi score of the class's samples at n = its floor's size",
               better="higher", floor_key="vendi_floor", floor_test=NAME),
)


def vendi_score(x: np.ndarray) -> float:
    """exp(entropy of the eigenvalues of K/n), K the cosine similarity of the rows of ``x``."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n == 0:
        return float("nan")
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    lam = np.linalg.eigvalsh(x.T @ x / n) if x.shape[1] < n else np.linalg.eigvalsh(x @ x.T / n)
    lam = lam[lam > 1e-12]
    return float(np.exp(-np.sum(lam * np.log(lam))))


def check(f, cfg) -> CheckResult:
    table, ratios = [], []
    centre = f.reference.features.mean(0)
    for lab, name in enumerate(f.classes):
        gen = f.generated.features[f.assigned == lab] - centre
        held = f.held.features[f.held_labels == lab] - centre
        test, _ = floors.floor_test(lambda i: vendi_score(gen[i]), lambda i: vendi_score(held[i]),
                                    len(gen), len(held), better="higher", min_effect=0.0,
                                    replicates=cfg.bootstrap, seed=cfg.seed + lab, min_n=2,
                                    min_class_n=cfg.min_class_n,
                                    held_memo=f.reuse.held("vendi", reuse.sources(vendi_score), held))
        row = {"class_name": name, "vendi_ratio": None, "vendi": None, "vendi_floor": None, "vs_floor": {}}
        if test is not None:
            row.update(vendi=test.value, vendi_floor=test.floor, vs_floor={NAME: test})
            if test.floor:
                row["vendi_ratio"] = test.value / test.floor
                ratios.append(row["vendi_ratio"])
        table.append(row)
    return CheckResult(NAME, table, float(np.median(ratios)) if ratios else None,
                       "median per-class Vendi ratio (generated ÷ held-out real)", [])
