"""Share amplification: does the model produce each class as often as it should?

The generated share of a class is read by the judge (what the model actually drew). It is
compared with the share it should have: the training share for unconditional runs, the
share of the conditioning labels for conditional ones (a sampler asking for uniform
classes on a skewed set is not the model's fault; with ``--label-dist train`` the two are
the same). The test is on the relative change, generated / expected share, so a class of 1%
produced at 0.1% is named as readily as a class of 30% produced at 3%: it fails when the
ratio's bootstrap interval (over generated samples) excludes 1 and the ratio is below 1/2
or above 2.
"""
from __future__ import annotations

import numpy as np

from datakit.audit import amplification, floors
from datakit.audit.checks import CheckResult
from datakit.audit.schema import Finding

NAME = "shares"


def _p(x: float) -> str:
    return f"{100 * x:.1f}%" if x < 0.1 else f"{100 * x:.0f}%"


def check(f, cfg) -> CheckResult:
    n_cls = len(f.classes)
    train_share = f.train_counts / max(1, f.train_counts.sum())
    if f.conditional:
        expected, basis = amplification.shares(f.generated_labels, n_cls), "conditioning labels"
    else:
        expected, basis = train_share, "training shares"
    judged = amplification.shares(f.generated_pred, n_cls)
    table, findings, reps = [], [], {}
    for lab, name in enumerate(f.classes):
        test, r = floors.share_test(f.generated_pred, lab, float(expected[lab]),
                                    replicates=cfg.bootstrap, seed=cfg.seed + lab)
        row = {"class_name": name, "train_count": int(f.train_counts[lab]),
               "train_share": float(train_share[lab]), "generated_share": float(judged[lab]),
               "generated_share_ratio": test.value if test else None, "vs_floor": {}}
        if test is not None:
            row["vs_floor"]["share"] = test
            reps[name] = r
            if test.worse:
                findings.append(_finding(name, test, float(expected[lab]), float(judged[lab]), basis))
        table.append(row)
    train_codes = np.repeat(np.arange(n_cls), f.train_counts)
    amp = amplification.share_table(f.classes, train_codes, f.assigned,
                                    "conditioning labels" if f.conditional else "judge predictions",
                                    judged_codes=f.generated_pred if f.conditional else None)
    amp["expected_basis"] = basis
    return CheckResult(NAME, table, amp["divergence"]["tv"], "total variation, generated vs training shares",
                       findings, sections={"amplification": {"classes": amp}}, replicates={"share": reps})


def _finding(name: str, test, expected: float, got: float, basis: str) -> Finding:
    verb = "suppressed" if test.value < 1 else "amplified"
    what = "of training images" if basis == "training shares" else "of the conditioning labels"
    return Finding(NAME, "fail", [name],
                   f"Class {name} is {verb}: {_p(expected)} {what}, {_p(got)} of generated samples as "
                   f"the judge reads them (×{test.value:.2f}, 95% CI ×{1 + test.ci_low:.2f} to "
                   f"×{1 + test.ci_high:.2f}).",
                   {"value": got, "floor": expected, "ratio": test.value, "ci_low": 1 + test.ci_low,
                    "ci_high": 1 + test.ci_high, "expected_basis": basis,
                    "min_factor": floors.MIN_SHARE_FACTOR})
