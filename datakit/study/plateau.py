"""Whether a run had plateaued by its own probe when training ended, and what each arm's
budget was: the two facts a reader needs before trusting a comparison of arms.

A study compares arms at one budget. If the largest arm's runs were still improving when
training stopped, "more data helps" is measured short of what that arm reaches. The trainer's
probe (``--probe-every``, :mod:`datakit.training.probe`) logs a quality reading into
metrics.csv every few steps: ``probe_label_fidelity`` for conditional models (higher is better),
else ``probe_fd`` (lower). A run **had plateaued** when

* the trainer stopped it on a plateau (config.json ``plateaued``), or
* the best reading of the last third of its probes improves on the best reading before them
  by at most :data:`TOLERANCE` (relative to that earlier best);

it **was still improving** otherwise, and is **unknown** with fewer than :data:`MIN_PROBES`
readings (no probe, or too few to split).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from datakit.report.numbers import fmt
from datakit.study.divergence import _numbers, _read_metrics

#: The share of a run's probe readings, at its end, read for a plateau.
LAST_SHARE = 1 / 3
#: An improvement of at most this much (relative to the earlier best) is no improvement:
#: about one standard error of a 300-sample label-fidelity probe near 0.9 (0.017).
TOLERANCE = 0.02
#: Fewer probe readings than this cannot be split into "before" and "the last third".
MIN_PROBES = 6
#: The probe readings a plateau is read from, in the trainer's order of preference.
CRITERIA = {"probe_label_fidelity": "higher", "probe_fd": "lower"}
_WORDS = {"probe_label_fidelity": "probe label fidelity", "probe_fd": "probe FD"}


def probe_plateau(run_dir: Path, *, stopped: bool = False) -> dict[str, Any]:
    """{state: "plateaued" | "improving" | "unknown", criterion, before, last_third,
    from_step, probes, stopped} of one run (see the module docstring). ``stopped``: the
    trainer stopped the run on a plateau (config.json ``plateaued``)."""
    out: dict[str, Any] = {"state": "plateaued" if stopped else "unknown", "criterion": None,
                           "before": None, "last_third": None, "from_step": None, "probes": 0,
                           "stopped": bool(stopped)}
    metrics = _read_metrics(run_dir)
    if metrics is None or "step" not in metrics:
        return out
    for column, better in CRITERIA.items():
        if column not in metrics:
            continue
        values = _numbers(metrics[column])
        steps = _numbers(metrics["step"]).reindex(values.index)
        keep = [i for i in values.index if math.isfinite(values[i])]
        if not keep:
            continue
        values, steps = values[keep].to_numpy(float), steps[keep].to_numpy(float)
        out.update(criterion=column, probes=len(values))
        if len(values) < MIN_PROBES:
            return out
        late = max(1, math.ceil(len(values) * LAST_SHARE))
        best = max if better == "higher" else min
        before, last = best(values[:-late]), best(values[-late:])
        gain = (last - before) if better == "higher" else (before - last)
        out.update(before=float(before), last_third=float(last), from_step=int(steps[-late]))
        if not stopped:
            flat = gain <= TOLERANCE * max(abs(before), 1e-12)
            out["state"] = "plateaued" if flat else "improving"
        return out
    return out


def arm_plateaus(runs: Sequence[dict[str, Any]], arms: Sequence[str]) -> list[dict[str, Any]]:
    """Per arm (in ``arms`` order): how many of its runs plateaued, were still improving, or
    cannot tell, and the images each run saw (steps done × batch)."""
    out = []
    for arm in arms:
        mine = [r for r in runs if r["arm"] == arm]
        states = [(r.get("probe_plateau") or {}).get("state", "unknown") for r in mine]
        seen = [r["steps_done"] * r["batch_size"] for r in mine
                if r.get("steps_done") and r.get("batch_size")]
        out.append({"arm": arm, "runs": len(mine),
                    **{s: states.count(s) for s in ("plateaued", "improving", "unknown")},
                    "images_seen": max(seen) if seen else None})
    return out


def plateau_findings(runs: Sequence[dict[str, Any]], per_arm: Sequence[dict[str, Any]]
                     ) -> list[dict[str, Any]]:
    """Study findings on the budget: a ``warn`` per arm with runs still improving when training
    ended (its numbers are short of what it reaches); else one ``info`` saying every run had
    plateaued, or that no probe was logged to tell."""
    improving = [a for a in per_arm if a["improving"]]
    if improving:
        out = []
        for a in improving:
            ex = [r["probe_plateau"] for r in runs if r["arm"] == a["arm"]
                  and (r.get("probe_plateau") or {}).get("state") == "improving"]
            gains = ", ".join(f"{fmt(p['before'])} → {fmt(p['last_third'])}" for p in ex)
            out.append({"check": "plateau", "severity": "warn", "classes": [],
                        "evidence": {"arm": a["arm"], "improving": a["improving"],
                                     "runs": a["runs"]},
                        "sentence": f"{a['arm']}: {a['improving']} of {a['runs']} runs were still "
                                    f"improving when training ended (best "
                                    f"{_WORDS[ex[0]['criterion']]} before the last third of "
                                    f"training → in it: {gains}); this arm's numbers are short "
                                    "of what a longer budget reaches."})
        return out
    done = sum(a["plateaued"] for a in per_arm)
    unknown = sum(a["unknown"] for a in per_arm)
    total = done + unknown
    most = max([(r.get("probe_plateau") or {}).get("probes", 0) for r in runs], default=0)
    if not done and not most:
        sentence = ("Whether the runs had plateaued is unknown: their training logged fewer than "
                    f"{MIN_PROBES} probe readings (set probe_every to read it).")
    elif not done:  # a probe was set, but its interval is long for the steps this budget runs
        sentence = (f"Whether the runs had plateaued is unknown: each logged at most {most} probe "
                    f"reading{'s' if most != 1 else ''}, fewer than the {MIN_PROBES} needed "
                    "(a larger --budget, or a smaller probe_every, gives more).")
    else:
        sentence = (("Every run" if not unknown else f"{done} of {total} runs")
                    + " had plateaued by its own training probe when training ended (its best "
                    f"reading in the last third of training within {TOLERANCE:.0%} of its best "
                    "before, or stopped on a plateau)"
                    + (f"; {unknown} logged too few probe readings to tell." if unknown else "."))
    return [{"check": "plateau", "severity": "info", "classes": [], "evidence": {},
             "sentence": sentence}]
