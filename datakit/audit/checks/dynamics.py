"""Training dynamics from metrics.csv: did the discriminator win, and how did its accuracy drift?

D's real/fake accuracy averaged over the last tenth of the logged steps: at or above
:data:`D_WINS` the discriminator tells real from fake almost always, so the generator
receives little signal (a warning: the samples' defects are judged by the other checks).
"""
from __future__ import annotations

import math

import pandas as pd

from datakit.audit.registry import CheckResult, pct
from datakit.audit.schema import Finding

NAME = "dynamics"
D_WINS = 0.9


def _mean_acc(m: pd.DataFrame) -> float:
    return float(pd.concat([pd.to_numeric(m["acc_real"], errors="coerce"),
                            pd.to_numeric(m["acc_fake"], errors="coerce")]).mean())


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
    drift = f"from {pct(start)} in the first tenth of training to {pct(end)} in the last" \
        if math.isfinite(start) else f"{pct(end)} in the last tenth of training"
    if end >= D_WINS:
        finding = Finding(NAME, "warn", [], f"The discriminator won: its accuracy went {drift}, so the "
                          "generator stopped receiving a useful signal.", ev)
    else:
        finding = Finding(NAME, "info", [], f"The discriminator's accuracy went {drift} (0.5 is the "
                          "adversarial equilibrium).", ev)
    return CheckResult(NAME, None, end, "D accuracy over the last tenth of training", [finding])
