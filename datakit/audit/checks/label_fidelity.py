"""Label fidelity (conditional runs): does the judge read a sample generated as class c as c?

Per class: the share of generated samples of conditioning label c that the judge reads as
c, against the judge's accuracy on held-out real images of c (the floor). Proportions are
not biased by sample size, so all samples of each side are used; the interval of the
difference is Newcombe's hybrid score interval (valid at 0/n and n/n). A class fails when
the whole interval lies at least ten points below 0
(:data:`datakit.audit.stats.floors.MIN_POINTS`), and only with at least
:data:`datakit.audit.stats.floors.MIN_CLASS_N` images on each side.
"""
from __future__ import annotations

import numpy as np

from datakit.audit.declare import MetricSpec
from datakit.audit.registry import CheckResult, pct
from datakit.audit.schema import Finding
from datakit.audit.stats import floors

NAME = "label_fidelity"
METRICS = (
    MetricSpec("label_fidelity", "label fidelity", "LF",
               "label fidelity: share of samples the judge reads as the class", better="higher",
               failure_reason="label_fidelity", floor_key="label_fidelity_floor", heatmap="value",
               position=30, reason_position=10),
)


def check(f, cfg) -> CheckResult:
    if not f.conditional:
        return CheckResult(NAME, None, None, "mean label fidelity", [])
    table, findings, reps = [], [], {}
    for lab, name in enumerate(f.classes):
        g_ok = (f.generated_pred[f.generated_labels == lab] == lab).astype(float)
        h_ok = (f.held_pred[f.held_labels == lab] == lab).astype(float)
        test, r = floors.floor_test(lambda i: g_ok[i].mean(), lambda i: h_ok[i].mean(), len(g_ok), len(h_ok),
                                    better="higher", min_effect=floors.MIN_POINTS,
                                    replicates=cfg.bootstrap, seed=cfg.seed + lab, min_class_n=cfg.min_class_n, size_matched=False,
                                    min_n=1, proportion_of=(len(g_ok), len(h_ok)))
        row = {"class_name": name, "label_fidelity": float(g_ok.mean()) if len(g_ok) else None,
               "label_fidelity_floor": float(h_ok.mean()) if len(h_ok) else None, "vs_floor": {}}
        if test is not None:
            row["vs_floor"][NAME] = test
            reps[name] = r
            if test.worse:
                findings.append(_finding(f, lab, name, test, len(g_ok)))
        table.append(row)
    ok = f.generated_pred[f.generated_labels >= 0] == f.generated_labels[f.generated_labels >= 0]
    return CheckResult(NAME, table, float(ok.mean()) if len(ok) else None,
                       "share of generated samples read as their conditioning label", findings,
                       replicates={NAME: reps})


def _finding(f, lab: int, name: str, test, n: int) -> Finding:
    read = f.generated_pred[f.generated_labels == lab]
    others = read[read != lab]
    as_what = ""
    if len(others):
        top = np.bincount(others, minlength=len(f.classes)).argmax()
        as_what = f"; {pct((read == top).mean())} are read as {f.classes[top]}"
    return Finding(NAME, "fail", [name],
                   f"Class {name} is not drawn as {name}: the judge reads {pct(test.value)} of the "
                   f"{n} samples generated as {name} as {name} (held-out real images: "
                   f"{pct(test.floor)}; difference {100 * test.difference:+.0f} points, 95% CI "
                   f"{100 * test.ci_low:+.0f} to {100 * test.ci_high:+.0f}){as_what}.",
                   {"test": NAME, "value": test.value, "floor": test.floor, "difference": test.difference,
                    "ci_low": test.ci_low, "ci_high": test.ci_high, "generated_count": n,
                    "min_effect": test.min_effect})
