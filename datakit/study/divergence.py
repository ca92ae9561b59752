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

and, against the same arm's other seeds (so that an arm that never learned, e.g. at a tiny
CPU budget, is a result about the arm and not a failed run):

* precision, recall and coverage all below :data:`NEAR_ZERO` (no sample near the real
  images and no real image near a sample) while the other seeds' median reaches :data:`LIVE`;
* label fidelity below :data:`NEAR_ZERO` while the other seeds' median reaches :data:`LIVE`;
* FD more than :data:`FD_OUTLIER` times the other seeds' median.
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
#: A share-valued metric of the arm's other seeds at least this high: they learned.
LIVE = 0.1
#: FD this many times the median of the arm's other seeds: an outlier run.
FD_OUTLIER = 5.0
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


def audit_signs(summary: dict[str, Any], others: Sequence[dict[str, Any]]) -> list[str]:
    """Signs of divergence in a run's whole-set metrics (study.json's run ``summary``) against
    ``others``, the summaries of its arm's other seeds (none: no sign can be read)."""
    if not others:
        return []
    out = []

    def median(key: str) -> float | None:
        vals = [v for v in (_value(o, key) for o in others) if v is not None]
        return float(np.median(vals)) if vals else None

    prc = {k: _value(summary, k) for k in ("precision", "recall", "coverage")}
    live = [median(k) for k in prc]
    if all(v is not None and v < NEAR_ZERO for v in prc.values()) \
            and any(m is not None and m >= LIVE for m in live):
        out.append("precision, recall and coverage are all near 0 ("
                   + ", ".join(f"{v:.3g}" for v in prc.values()) + ") while its arm's other "
                   "seeds reach " + ", ".join("–" if m is None else f"{m:.3g}" for m in live))
    lf, lf_others = _value(summary, "label_fidelity"), median("label_fidelity")
    if lf is not None and lf < NEAR_ZERO and lf_others is not None and lf_others >= LIVE:
        out.append(f"label fidelity is near 0 ({lf:.3g}; its arm's other seeds {lf_others:.3g})")
    fd, fd_others = _value(summary, "fd"), median("fd")
    if fd is not None and fd_others and fd > FD_OUTLIER * fd_others:
        out.append(f"FD {fd:.4g} is {fd / fd_others:.0f}× its arm's other seeds' ({fd_others:.4g})")
    return out


def mark_diverged(records: list[dict[str, Any]]) -> None:
    """Add the audit signs (:func:`audit_signs`, against each run's arm mates) to each study.json
    run record's ``diverged`` list (which holds its training signs already)."""
    signs = []
    for r in records:
        mates = [o["summary"] for o in records
                 if o["arm"] == r["arm"] and o is not r and not o.get("diverged")]
        signs.append(audit_signs(r["summary"], mates))
    for r, more in zip(records, signs):
        r["diverged"] = list(r.get("diverged") or []) + more


def divergence_signs(run_dir: Path) -> list[str]:
    """The signs in the training log of the run in ``run_dir`` (its audit's signs need its
    arm's other runs: :func:`mark_diverged`)."""
    return training_signs(_read_metrics(run_dir))


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
