"""Judge trust: can the measuring network's readings be believed, and where is it biased?

Its accuracy on held-out real images (over the run's classes), a warning below the
configured minimum, and the confusion matrices of held-out real and generated images
(rows: true or conditioning label; columns: the judge's reading), so that "class 3
over-produced" can be told apart from a judge that reads many real 8s as 3.
"""
from __future__ import annotations

import numpy as np

from datakit.audit.registry import CheckResult, names, pct
from datakit.audit.schema import Confusion, Finding
from datakit.audit.stats.amplification import confusion_counts

NAME = "judge"
#: A class the judge reads correctly less often than this (held-out real) gets a note.
WEAK_CLASS = 0.9


def confusion(true: np.ndarray, pred: np.ndarray, n: int) -> list[list[int]]:
    """n×n counts as audit.json's lists: row = true label, column = predicted label."""
    return confusion_counts(true, pred, n).tolist()


def check(f, cfg) -> CheckResult:
    n, judge = len(f.classes), f.judge
    acc = float((f.held_pred == f.held_labels).mean()) if len(f.held_labels) else None
    per_class = {}
    for lab, name in enumerate(f.classes):
        m = f.held_labels == lab
        per_class[name] = float((f.held_pred[m] == lab).mean()) if m.any() else None
    min_acc = cfg.judge.min_accuracy
    trusted = acc is None or acc >= min_acc
    conf = Confusion(list(f.classes), confusion(f.held_labels, f.held_pred, n),
                     confusion(f.generated_labels, f.generated_pred, n) if f.conditional else None)
    section = {**judge.info, "held_out_accuracy": acc, "held_out_accuracy_per_class": per_class,
               "judge_held_out_accuracy": judge.info.get("held_out_accuracy"),
               "trusted": trusted, "min_accuracy": min_acc, "classes": judge.classes,
               "domains": judge.domains, "feature_dim": judge.net.feature_dim,
               "manifest": str(f.judge_manifest.path.resolve()),
               "manifest_checksum": f.judge_manifest.checksum,
               "shared": f.judge_manifest.checksum != f.run.manifest.checksum, "confusion": conf}
    findings = []
    if not trusted:
        folded = judge.info.get("held_out_accuracy_ignoring_case")
        case = f" ({pct(folded)} ignoring letter case)" if folded is not None else ""
        findings.append(Finding(NAME, "warn", [], f"The judge reads only {pct(acc)} of held-out real images "
                                f"correctly{case}, below {pct(min_acc)}; its class readings and features are "
                                "too weak to trust, so treat every class-level number as rough.",
                                {"value": acc, "floor": min_acc}))
    weak = [c for c, a in per_class.items() if a is not None and a < WEAK_CLASS]
    if weak and trusted:
        findings.append(Finding(NAME, "info", weak, f"The judge reads held-out real images of {names(weak)} "
                                f"correctly less than {pct(WEAK_CLASS)} of the time "
                                f"({', '.join(f'{c}: {pct(per_class[c])}' for c in weak[:8])}); "
                                "findings about these classes partly reflect the judge (see its confusion "
                                "matrix).", {"per_class": {c: per_class[c] for c in weak}}))
    return CheckResult(NAME, None, acc, "judge accuracy on held-out real images", findings,
                       sections={"judge": section})
