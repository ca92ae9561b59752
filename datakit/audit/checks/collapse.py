"""Total collapse and diversity: are a class's generated samples (nearly) all alike?

Per class: diversity (mean pairwise feature distance of generated samples over that of
the class's training images) and the share of generated pairs closer than one real
nearest-neighbour radius, each beside the same numbers for held-out real images. The rule
(:class:`datakit.audit.stats.collapse.CollapseRule`) marks a class collapsed when diversity
falls below half of real or most pairs are near-duplicates; a class with no or one
generated sample is collapsed too (dropped mode). Partial collapse is the ``modes`` check.

The near-duplicate share is also a floor test (``vs_floor["close_pairs"]``, generated and
held-out samples at the same n, bootstrap interval; clearly worse at 4× the held-out share
and 1 point more, :func:`datakit.audit.stats.floors.close_pairs_min_effect`). A class drawn
from one of its styles over and over keeps its diversity and its coverage (its samples still
spread over the class's feature space) but holds many near-duplicate pairs: on a trained
ACGAN with class 5 cut to a fifth of its styles, 2.7% of its pairs against 0.24% held-out,
while its siblings sat at 0.3–3.2× their floors. Standing out on it (against the run's other
classes, :mod:`datakit.audit.stats.standout`) collapses the class partially.
"""
from __future__ import annotations

import numpy as np

from datakit.audit import reuse
from datakit.audit.declare import MetricSpec
from datakit.audit.registry import CheckResult
from datakit.audit.schema import Finding
from datakit.audit.stats import floors
from datakit.audit.stats.collapse import CollapseRule, close_pair_statistic, collapse_verdict
from datakit.judge import metrics

NAME = "collapse"
METRICS = (
    MetricSpec("diversity_ratio", "diversity", "div", "diversity of samples ÷ diversity of real images",
               better="higher", floor_key="diversity_floor", position=60),
    MetricSpec("close_pair_share", "close pairs", "close", "share of sample pairs nearly identical",
               better="lower", failure_reason="close_pairs", floor_key="close_pair_share_floor", position=70,
               reason_position=45),
)


def _div(x: np.ndarray, real_div: float, seed: int) -> float:
    return metrics.mean_pairwise_distance(x, seed=seed) / real_div if real_div > 0 else float("nan")


def check(f, cfg) -> CheckResult:
    rule = CollapseRule(cfg.collapse_max_diversity_ratio, cfg.collapse_max_close_pair_share)
    table, findings, reps = [], [], {}
    for lab, name in enumerate(f.classes):
        ref = f.reference.features[f.reference_labels == lab]
        held = f.held.features[f.held_labels == lab]
        gen = f.generated.features[f.assigned == lab]
        if len(ref) < 2:
            table.append({"class_name": name, "collapsed": False,
                          "collapse_evidence": f"class {name}: fewer than 2 reference images, no verdict."})
            continue
        real_div = f.reuse(metrics.mean_pairwise_distance, ref, seed=cfg.seed, kind=float)
        radius = float(np.median(f.reuse(metrics.neighbour_distances, ref, 1)[:, 0]))
        # the pair distances of each side once: for the share and for its floor test's replicates
        gen_close = close_pair_statistic(gen, radius, seed=cfg.seed)
        held_close = close_pair_statistic(held, radius, seed=cfg.seed)
        div, close = _div(gen, real_div, cfg.seed), gen_close(np.arange(len(gen)))
        collapsed, evidence = collapse_verdict(name, len(gen), div, close, rule)
        table.append({"class_name": name, "diversity_ratio": div,
                      "diversity_floor": _div(held, real_div, cfg.seed), "close_pair_share": close,
                      "close_pair_share_floor": held_close(np.arange(len(held))),
                      "collapsed": collapsed, "collapse_evidence": evidence, "vs_floor": {}})
        test, r = floors.floor_test(gen_close, held_close, len(gen), len(held), better="lower",
                                    min_effect=floors.close_pairs_min_effect, replicates=cfg.bootstrap,
                                    seed=cfg.seed + lab, min_class_n=cfg.min_class_n,
                                    held_memo=f.reuse.held("close pairs", reuse.sources(close_pair_statistic),
                                                          held, radius, cfg.seed))
        if test is not None:
            table[-1]["vs_floor"]["close_pairs"] = test
            reps[name] = r
            if test.worse and not collapsed:  # a total collapse's own finding says it already
                findings.append(Finding(
                    NAME, "fail", [name], f"Class {name} holds many near-duplicate samples: "
                    f"{100 * test.value:.1f}% of its sample pairs lie within one real nearest-neighbour radius "
                    f"of each other against {100 * test.floor:.1f}% of held-out real pairs (both at n = "
                    f"{test.sample_size}; 95% CI of the difference {100 * test.ci_low:+.1f} to "
                    f"{100 * test.ci_high:+.1f} points).",
                    {"test": "close_pairs", "value": test.value, "floor": test.floor, "ci_low": test.ci_low,
                     "ci_high": test.ci_high, "sample_size": test.sample_size, "min_effect": test.min_effect,
                     "radius": radius}))
        if collapsed:
            findings.append(Finding(NAME, "fail", [name], f"Class {name} collapsed: "
                                    + evidence.split(": ", 1)[1].split(" -> ")[0] + ".",
                                    {"diversity_ratio": div, "close_pair_share": close,
                                     "generated_count": int(len(gen)),
                                     "max_diversity_ratio": rule.max_diversity_ratio,
                                     "max_close_pair_share": rule.max_close_pair_share}))
    n = sum(1 for r in table if r["collapsed"])
    return CheckResult(NAME, table, float(n), "classes totally collapsed", findings,
                       replicates={"close_pairs": reps} if reps else {})
