"""Share amplification: does the model produce each class as often as it should?

The generated share of a class is read by the judge (what the model actually drew). It is
compared with the share a faithful generator would show *to this judge*:

1. requested shares: for conditional runs the run's declared label distribution
   (config.json ``label_dist``: "uniform" → 1/K, "train" → the training shares; a sampler
   asking for uniform classes on a skewed set is not the model's fault), not the labels
   that happened to be generated (those may be the defect); for unconditional runs (or no
   ``label_dist``) the training shares; a conditional run that declares no ``label_dist``
   (older runs) falls back to the conditioning labels in generated.npz;
2. expected read share of class c = Σ_j requested_j × P(judge reads c | true class j), with
   P the judge's held-out confusion matrix, row-normalised (a class without held-out
   images keeps an identity row): a judge that misreads minority classes more must not
   make a faithful generator look biased. P is estimated from a finite held-out set, so the
   bootstrap also draws P from its posterior given the held-out counts
   (:func:`expected_replicates`): the ratio's interval carries the expectation's uncertainty.

The test is on the relative change, generated / expected share, so a class of 1%
produced at 0.1% is named as readily as a class of 30% produced at 3%: it fails when the
ratio's bootstrap interval (over generated samples) excludes 1 and the ratio is below 1/2
or above 2.
"""
from __future__ import annotations

import numpy as np

from datakit.audit.declare import MetricSpec
from datakit.audit.registry import CheckResult
from datakit.audit.schema import Finding
from datakit.audit.stats import amplification, floors

NAME = "shares"
#: Per-class metrics (generated_share: the judge's reading of the samples' class shares).
METRICS = (
    MetricSpec("generated_share", "generated share", "gen share",
               "share of generated samples the judge reads as the class", better="equal",
               shown=False, position=10),
    MetricSpec("generated_share_ratio", "share ratio", "share×", "generated share ÷ training share (1 = kept)",
               better="equal", failure_reason="share", heatmap="value", position=20, reason_position=60),
)


def _p(x: float) -> str:
    return f"{100 * x:.1f}%" if x < 0.1 else f"{100 * x:.0f}%"


def requested_shares(f) -> tuple[np.ndarray, str]:
    """The shares the run asked for, and their basis (see the module docstring, step 1)."""
    n_cls = len(f.classes)
    train_share = f.train_counts / max(1, f.train_counts.sum())
    dist = str(f.run.config.get("label_dist") or "") if f.conditional else "train"
    if dist == "uniform":
        return np.full(n_cls, 1.0 / n_cls), "uniform label distribution"
    if dist == "train":
        return train_share, "training shares"
    # an older conditional run that does not declare its distribution: the labels it asked for
    return amplification.shares(f.generated_labels, n_cls), "conditioning labels"


def judge_read_matrix(true: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    """P(judge reads column | true row) from held-out images; identity rows where a class has none."""
    counts = amplification.confusion_counts(true, pred, n).astype(np.float64)
    rows = counts.sum(1, keepdims=True)
    return np.where(rows > 0, counts / np.maximum(rows, 1), np.eye(n))


def expected_read_shares(requested: np.ndarray, read_matrix: np.ndarray) -> np.ndarray:
    """Σ_j requested_j × P(reads c | j): the judge-read shares of a faithful generator."""
    return np.asarray(requested, np.float64) @ read_matrix


def expected_replicates(requested: np.ndarray, true: np.ndarray, pred: np.ndarray, n: int,
                        replicates: int, seed: int) -> np.ndarray:
    """replicates × n expected read shares, each row of P drawn from its posterior.

    Row c of the judge's reading matrix is drawn from Dirichlet(counts_c + 1/n) (a prior
    worth one image, spread over the classes), so a class read right 13 times out of 13
    still carries the uncertainty of 13 images, where a bootstrap would not move at all.
    A class without held-out images keeps its identity row."""
    rng = np.random.default_rng(seed)
    counts = amplification.confusion_counts(true, pred, n).astype(np.float64)
    out = np.empty((replicates, n))
    for r in range(replicates):
        p = np.array([rng.dirichlet(row + 1.0 / n) if row.sum() else np.eye(n)[c] for c, row in enumerate(counts)])
        out[r] = expected_read_shares(requested, p)
    return out


def check(f, cfg) -> CheckResult:
    n_cls = len(f.classes)
    requested, basis = requested_shares(f)
    expected = expected_read_shares(requested, judge_read_matrix(f.held_labels, f.held_pred, n_cls))
    exp_reps = expected_replicates(requested, f.held_labels, f.held_pred, n_cls, cfg.bootstrap, cfg.seed)
    judged = amplification.shares(f.generated_pred, n_cls)
    table, findings, reps = [], [], {}
    for lab, name in enumerate(f.classes):
        test, r = floors.share_test(f.generated_pred, lab, float(expected[lab]), replicates=cfg.bootstrap,
                                    seed=cfg.seed + lab, expected_reps=exp_reps[:, lab])
        row = {"class_name": name, "generated_share": float(judged[lab]),
               "generated_share_ratio": test.value if test else None, "vs_floor": {}}
        if test is not None:
            row["vs_floor"]["share"] = test
            reps[name] = r
            if test.worse:
                findings.append(_finding(name, test, float(requested[lab]), float(expected[lab]),
                                         float(judged[lab]), basis))
        table.append(row)
    train_codes = np.repeat(np.arange(n_cls), f.train_counts)
    amp = amplification.share_table(f.classes, train_codes, f.assigned,
                                    "conditioning labels" if f.conditional else "judge predictions",
                                    judged_codes=f.generated_pred if f.conditional else None)
    amp["expected_basis"] = basis
    return CheckResult(NAME, table, amp["divergence"]["tv"], "total variation, generated vs training shares",
                       findings, sections={"amplification": {"classes": amp}}, replicates={"share": reps})


def _finding(name: str, test, requested: float, expected: float, got: float, basis: str) -> Finding:
    verb = "suppressed" if test.value < 1 else "amplified"
    what = {"training shares": "of training images", "uniform label distribution":
            "under the run's uniform label distribution"}.get(basis, "of the conditioning labels")
    return Finding(NAME, "fail", [name],
                   f"Class {name} is {verb}: {_p(requested)} {what} ({_p(expected)} as this judge would "
                   f"read a faithful generator), {_p(got)} of generated samples as the judge reads them "
                   f"(×{test.value:.2f}, 95% CI ×{1 + test.ci_low:.2f} to ×{1 + test.ci_high:.2f}).",
                   {"test": "share", "value": got, "floor": expected, "requested": requested, "ratio": test.value,
                    "ci_low": 1 + test.ci_low, "ci_high": 1 + test.ci_high, "expected_basis": basis,
                    "min_factor": floors.MIN_SHARE_FACTOR})
