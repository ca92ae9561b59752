"""Training dynamics from metrics.csv: did the discriminator win, and how did its accuracy drift?
For a conditional run, did its auxiliary classifier learn the labels?

D's real/fake accuracy averaged over the last tenth of the logged steps: at or above
:data:`D_WINS` the discriminator tells real from fake almost always, so the generator
receives little signal (a warning: the samples' defects are judged by the other checks).

An ACGAN's auxiliary classifier (``acc_aux``: its accuracy on the real images' labels) is
compared with the judge's accuracy on held-out real images, the same kind of reading by a
network trained for it: below :data:`AUX_WEAK` of the judge's over the last tenth of
training, the class head gives the generator little class signal (a warning).
"""
from __future__ import annotations

import math

import pandas as pd

from datakit.audit.registry import CheckResult, pct
from datakit.audit.schema import Finding

NAME = "dynamics"
D_WINS = 0.9
#: An auxiliary classifier reading fewer real labels than this share of the judge's held-out
#: accuracy (last tenth of training) is weak: e.g. 0.5 against a judge's 0.99.
AUX_WEAK = 0.8


def _mean_acc(m: pd.DataFrame) -> float:
    return float(pd.concat([pd.to_numeric(m["acc_real"], errors="coerce"),
                            pd.to_numeric(m["acc_fake"], errors="coerce")]).mean())


def _drift(start: float, end: float) -> str:
    """"from 66% in the first tenth of training to 50% in the last" (the end alone when the
    first tenth has no reading)."""
    if math.isfinite(start):
        return f"from {pct(start)} in the first tenth of training to {pct(end)} in the last"
    return f"{pct(end)} in the last tenth of training"


def check(f, cfg) -> CheckResult:
    path = f.run.run_dir / "metrics.csv"
    try:
        m = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError):
        return CheckResult(NAME, None, None, "D accuracy over the last tenth of training", [])
    if m.empty or "acc_real" not in m or "acc_fake" not in m:
        return CheckResult(NAME, None, None, "D accuracy over the last tenth of training", [])
    tenth = max(1, len(m) // 10)
    start, end = _mean_acc(m.head(tenth)), _mean_acc(m.tail(tenth))
    if not math.isfinite(end):
        return CheckResult(NAME, None, None, "D accuracy over the last tenth of training", [])
    ev = {"value": end, "floor": 0.5, "start": start if math.isfinite(start) else None, "d_wins": D_WINS}
    drift = _drift(start, end)
    if end >= D_WINS:
        finding = Finding(NAME, "warn", [], f"The discriminator won: its accuracy went {drift}, so the "
                          "generator stopped receiving a useful signal.", ev)
    else:
        finding = Finding(NAME, "info", [], f"The discriminator's accuracy went {drift} (0.5 is the "
                          "adversarial equilibrium).", ev)
    aux = _aux_finding(m, f, tenth)
    return CheckResult(NAME, None, end, "D accuracy over the last tenth of training",
                       [finding] + ([aux] if aux else []))


def _aux_finding(m: pd.DataFrame, f, tenth: int) -> Finding | None:
    """How well the auxiliary classifier read the real labels at the end, against the judge
    (None for a run that logged no ``acc_aux``, e.g. a DCGAN, or with no held-out images)."""
    aux = pd.to_numeric(m["acc_aux"], errors="coerce") if "acc_aux" in m else None
    if aux is None or not aux.notna().any() or not len(f.held_labels):
        return None
    start, end = float(aux.head(tenth).mean()), float(aux.tail(tenth).mean())
    if not math.isfinite(end):
        return None
    judge = float((f.held_pred == f.held_labels).mean())
    chance = 1 / max(1, len(f.classes))
    ev = {"value": end, "floor": judge, "start": start if math.isfinite(start) else None,
          "weak_below": AUX_WEAK * judge, "chance": chance, "metric": "acc_aux"}
    drift = _drift(start, end)
    if end < AUX_WEAK * judge:
        first = f"from {pct(start)} in the first; " if math.isfinite(start) else ""
        return Finding(NAME, "warn", [], f"The discriminator's auxiliary classifier read only {pct(end)} of "
                       f"the real images' labels in the last tenth of training ({first}chance is "
                       f"{pct(chance)}), against {pct(judge)} for the judge on held-out real images: "
                       "its class head gives the generator little class signal, so samples may not "
                       "look like the class they were asked for (see label fidelity).", ev)
    return Finding(NAME, "info", [], f"The discriminator's auxiliary classifier read the real images' "
                   f"labels {drift} ({pct(judge)} for the judge on held-out real images).", ev)
