"""Runs whose training diverged: named as ``fail`` findings and left out of every comparison.

A GAN run can blow up: its generator ends up drawing one blot, its discriminator wins, and
every metric of the run reads as a catastrophe. Averaged with healthy seeds, one such run
drags an arm's mean far off and widens its interval past what the metric can take. A study
therefore reads each run for the signs of divergence, names the run in a ``fail`` finding
and leaves it out of arm means and contrasts (which then say so and count the seeds they
used). The signs, each from numbers the run already has:

* a value in metrics.csv (losses, probe readings) that is NaN or infinite;
* a loss blow-up: in the last fifth of the logged steps, a loss above :data:`LOSS_BLOWUP`
  times the run's median absolute loss (and above :data:`LOSS_FLOOR`);
* the training probe collapsing: its label fidelity falling below :data:`PROBE_DROP` of its
  best reading, or its FD rising above :data:`PROBE_RISE` times its best;
* precision, recall and coverage all below :data:`NEAR_ZERO` (no sample near the real
  images and no real image near a sample);
* label fidelity below :data:`NEAR_ZERO` in a conditional run (no sample reads as its class).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

#: Below this a share-valued metric (precision, recall, coverage, label fidelity) counts as 0.
NEAR_ZERO = 0.02
#: A loss this many times the run's median absolute loss, late in training, is a blow-up...
LOSS_BLOWUP = 10.0
#: ... when it is also above this absolute value (GAN losses sit near 0.5-5).
LOSS_FLOOR = 10.0
#: The probe's label fidelity has collapsed below this share of its best reading.
PROBE_DROP = 0.5
#: The probe's FD has collapsed above this multiple of its best (lowest) reading.
PROBE_RISE = 3.0
_LOSSES = ("loss_d", "loss_g")


def _read_metrics(run_dir: Path) -> pd.DataFrame | None:
    """metrics.csv as text (an empty cell is a step without that reading; "nan" is not)."""
    try:
        return pd.read_csv(Path(run_dir) / "metrics.csv", dtype=str, keep_default_na=False)
    except (OSError, ValueError):
        return None


def _numbers(column: pd.Series) -> pd.Series:
    """A column's logged numbers (empty cells dropped; "nan" and "inf" kept as such)."""
    raw = column.astype(str).str.strip()
    return pd.to_numeric(raw[raw != ""], errors="coerce")


def training_signs(metrics: pd.DataFrame | None) -> list[str]:
    """Signs of divergence in a run's metrics.csv (read as text, :func:`_read_metrics`), as
    short phrases."""
    if metrics is None or metrics.empty:
        return []
    out = []
    columns = [c for c in metrics.columns if c in _LOSSES or c.startswith("probe_")]
    bad = [c for c in columns if not np.isfinite(_numbers(metrics[c]).to_numpy(float)).all()]
    if bad:
        out.append(f"NaN or infinite values in metrics.csv ({', '.join(bad)})")
    tail = max(1, len(metrics) // 5)
    for c in (c for c in _LOSSES if c in metrics and c not in bad):
        v = _numbers(metrics[c]).abs()
        if v.empty:
            continue
        median, late = float(v.median()), float(v.iloc[-tail:].max())
        if late > LOSS_FLOOR and late > LOSS_BLOWUP * max(median, 1e-12):
            out.append(f"{c} blew up to {late:.3g} (median {median:.3g})")
    lf = _probe(metrics, "probe_label_fidelity")
    if lf is not None and lf.max() > 0 and lf.iloc[-1] < PROBE_DROP * lf.max():
        out.append(f"the probe's label fidelity fell to {lf.iloc[-1]:.3g} from {lf.max():.3g}")
    fd = _probe(metrics, "probe_fd")
    if fd is not None and fd.min() > 0 and fd.iloc[-1] > PROBE_RISE * fd.min():
        out.append(f"the probe's FD rose to {fd.iloc[-1]:.3g} from {fd.min():.3g}")
    return out


def _probe(metrics: pd.DataFrame, column: str) -> pd.Series | None:
    if column not in metrics:
        return None
    v = _numbers(metrics[column])
    v = v[np.isfinite(v.to_numpy(float))]
    return v if len(v) >= 2 else None


def _value(summary: dict[str, Any], key: str) -> float | None:
    v = (summary.get(key) or {}).get("value") if isinstance(summary.get(key), dict) else None
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def audit_signs(summary: dict[str, Any]) -> list[str]:
    """Signs of divergence in a run's whole-set metrics (study.json's run ``summary``)."""
    out = []
    prc = {k: _value(summary, k) for k in ("precision", "recall", "coverage")}
    if all(v is not None for v in prc.values()) and all(v < NEAR_ZERO for v in prc.values()):
        out.append("precision, recall and coverage are all near 0 ("
                   + ", ".join(f"{v:.3g}" for v in prc.values()) + ")")
    lf = _value(summary, "label_fidelity")
    if lf is not None and lf < NEAR_ZERO:
        out.append(f"label fidelity is near 0 ({lf:.3g})")
    return out


def divergence_signs(run_dir: Path, summary: dict[str, Any]) -> list[str]:
    """Every sign that the run in ``run_dir`` diverged (empty: a healthy run)."""
    return training_signs(_read_metrics(run_dir)) + audit_signs(summary)


def run_name(record: dict[str, Any]) -> str:
    """How a sentence names a study's run: "ARM seed K"."""
    return f"{record['arm']} seed {record['seed']}"


def diverged_findings(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One ``fail`` finding per diverged run (a study.json run record with ``diverged`` signs)."""
    out = []
    for r in records:
        if r.get("diverged"):
            out.append({"check": "diverged", "severity": "fail", "classes": [],
                        "sentence": f"Run {run_name(r)} diverged in training: "
                                    f"{'; '.join(r['diverged'])}. It is left out of its arm's "
                                    "means and of every contrast, which count the seeds they used.",
                        "evidence": {"arm": r["arm"], "seed": r["seed"], "signs": r["diverged"]}})
    return out
