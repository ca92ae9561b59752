"""Contrasts: known answers for the interval over seeds and resampled images."""
from __future__ import annotations

import numpy as np
import pytest

from datakit.study.contrasts import (
    Measurement,
    adjacent_pairs,
    arm_summary,
    contrast,
    measurement,
    study_verdict,
)


def _runs(values, se=0.5):
    return [Measurement(s, float(v), se) for s, v in enumerate(values)]


def test_identical_arms_are_rarely_called_different():
    # Planted null: both arms draw every seed's FD from one distribution. A 95% interval
    # must call them different in about 5% of studies, not the 20-30% a percentile
    # bootstrap over three seeds gives.
    rng = np.random.default_rng(1)
    calls = 0
    for i in range(300):
        a = _runs(rng.normal(40, 3, 3), se=1.0)
        b = _runs(rng.normal(40, 3, 3), se=1.0)
        calls += contrast("none", "a", "b", "fd", a, b, seed=i)["conclusive"]
    assert calls / 300 <= 0.08


def test_identical_arms_sentence_says_inconclusive():
    c = contrast("images", "a", "b", "fd", _runs([40, 43, 38]), _runs([41, 39, 42]))
    assert not c["conclusive"] and c["ci_low"] < 0 < c["ci_high"]
    assert "inconclusive at this budget" in c["sentence"]


def test_clearly_different_arms_are_conclusive_with_the_right_sign():
    # Disjoint distributions: b's FD is about 30 lower on every seed.
    c = contrast("images", "small", "large", "fd", _runs([70, 72, 69]), _runs([40, 41, 43]))
    assert c["conclusive"] and c["ci_high"] < 0
    assert c["difference"] == pytest.approx(-29.0)
    assert "large is better than small (conclusive)" in c["sentence"]
    lf = contrast("images", "small", "large", "label_fidelity", _runs([0.5, 0.52, 0.49], 0.01),
                  _runs([0.9, 0.91, 0.93], 0.01))
    assert lf["conclusive"] and lf["ci_low"] > 0 and "large is better" in lf["sentence"]


def test_image_noise_widens_the_interval():
    # The same seed means, but each run measured on few images (large image SE): the
    # difference is no longer separated from 0.
    sharp = contrast("f", "a", "b", "coverage", _runs([0.50, 0.52, 0.51], 0.001),
                     _runs([0.56, 0.57, 0.58], 0.001))
    blurred = contrast("f", "a", "b", "coverage", _runs([0.50, 0.52, 0.51], 0.2),
                       _runs([0.56, 0.57, 0.58], 0.2))
    assert sharp["conclusive"] and not blurred["conclusive"]


def test_one_seed_is_never_conclusive():
    c = contrast("f", "a", "b", "fd", _runs([70]), _runs([10]))
    assert not c["conclusive"] and c["ci_low"] is None and c["difference"] == -60
    assert "one seed" in c["sentence"] and "inconclusive at this budget" in c["sentence"]


def test_contrast_pairs_by_seed():
    a = [Measurement(0, 1.0), Measurement(1, 2.0), Measurement(5, 9.0)]
    b = [Measurement(1, 3.0), Measurement(0, 2.0), Measurement(7, 0.0)]
    c = contrast("f", "a", "b", "recall", a, b)
    assert c["n_seeds"] == 2 and c["difference"] == pytest.approx(1.0)


def test_measurement_reads_audit_entries():
    m = measurement(2, {"value": 10.0, "ci_low": 8.04, "ci_high": 11.96})
    assert m.seed == 2 and m.value == 10 and m.image_se == pytest.approx(1.0, rel=1e-3)
    assert measurement(0, {"value": None}) is None
    assert measurement(0, 0.3).image_se == 0


def test_arm_summary_and_adjacent_pairs():
    s = arm_summary(_runs([1.0, 2.0, 3.0], 0.0))
    assert s["mean"] == 2 and s["n_seeds"] == 3 and s["ci_low"] < 2 < s["ci_high"]
    assert adjacent_pairs({"c": 0.5, "a": 0.0, "b": 0.25, "d": 0.5}) == [("a", "b"), ("b", "c")]


def test_verdict_comes_only_from_contrasts():
    yes = contrast("f", "a", "b", "fd", _runs([70, 72, 69]), _runs([40, 41, 43]))
    no = contrast("f", "a", "b", "recall", _runs([0.4, 0.5, 0.45]), _runs([0.5, 0.4, 0.45]))
    v = study_verdict([yes, no])
    assert v[0] == yes["sentence"] and "1 of 2 contrasts are inconclusive" in v[-1]


def test_a_contrasts_p_value_agrees_with_its_interval():
    rng = np.random.default_rng(3)
    for i in range(200):
        n = int(rng.integers(2, 6))
        shift = float(rng.choice([0.0, 0.5, 1.5]))
        c = contrast("f", "a", "b", "fd", _runs(list(rng.normal(10, 1, n)), 0.3),
                     _runs(list(rng.normal(10 + shift, 1, n)), 0.3), seed=i)
        assert (c["p_value"] < 0.05) == c["conclusive"], c
    assert "p_value" not in contrast("f", "a", "b", "fd", _runs([70]), _runs([10]))  # one seed


def test_q_values_are_benjamini_hochberg():
    from scipy.stats import false_discovery_control
    from datakit.study.contrasts import q_values
    ps = [0.01, 0.04, 0.03, 0.005, 0.2, 0.049]
    got = q_values(ps[:2] + [None] + ps[2:])
    assert got[2] is None
    assert np.allclose([q for q in got if q is not None], false_discovery_control(ps))
    assert np.allclose(q_values([0.01, 0.04, 0.03, 0.005]), [0.02, 0.04, 0.04, 0.02])  # by hand


def test_conclusive_contrasts_are_weighed_as_a_family():
    from datakit.report.numbers import fmt
    strong = contrast("f", "a", "b", "fd", _runs([70, 72, 69]), _runs([40, 41, 43]))
    weak = contrast("f", "a", "b", "precision", _runs([0.40, 0.42, 0.41], 0), _runs([0.43, 0.47, 0.44], 0))
    null = contrast("f", "a", "b", "recall", _runs([0.4, 0.5, 0.45], 0), _runs([0.5, 0.4, 0.45], 0))
    assert weak["conclusive"] and 0.01 < weak["p_value"] < 0.05 and strong["p_value"] < 0.005
    # Healthy control: a sharp difference among few contrasts stands.
    assert study_verdict([strong, null])[1] == (
        "1 of 2 contrasts is conclusive at 95% and it stands with the false-discovery rate over "
        "the 2 held at 5% (Benjamini–Hochberg); where nothing differs, about 1 contrast in 20 "
        "reads conclusive by chance.")
    # Planted: a barely conclusive contrast among 12 is what chance makes; it is said to be one.
    v = study_verdict([strong, weak] + [null] * 10)
    assert v[:2] == [strong["sentence"], weak["sentence"]]  # the answer is unchanged
    assert v[2] == (
        "2 of 12 contrasts are conclusive at 95% each; where nothing differs, about 1 contrast in "
        "20 reads conclusive by chance. With the false-discovery rate over the 12 held at 5% "
        "(Benjamini–Hochberg), 1 stands and 1 may be chance (precision, b vs a (q 0.191)); more "
        "seeds would settle it.")
    assert study_verdict([weak] + [null] * 10)[1] == (
        "1 of 11 contrasts is conclusive at 95%; where nothing differs, about 1 contrast in 20 "
        "reads conclusive by chance. With the false-discovery rate over the 11 held at 5% "
        f"(Benjamini–Hochberg), none stands: it may be chance (precision, b vs a (q {fmt(weak['p_value'] * 11)})); "
        "more seeds would settle it.")
    from datakit.study.contrasts import study_findings
    family = study_findings([strong, weak] + [null] * 10)[2]
    assert family["evidence"] == {"tested": 12, "conclusive": 2, "stand": 1, "fdr": 0.05,
                                  "may_be_chance": ["precision: b vs a"]}
    assert not any(f["sentence"].startswith(("1 of", "2 of")) for f in study_findings([null, null])
                   if "conclusive at 95%" in f["sentence"])  # nothing conclusive: no such line


def test_the_inconclusive_count_says_why():
    one_seed = contrast("f", "a", "b", "fd", _runs([70]), _runs([10]))
    spans_zero = contrast("f", "a", "b", "recall", _runs([0.4, 0.5, 0.45]), _runs([0.5, 0.4, 0.45]))
    unpaired = contrast("f", "a", "b", "precision", [Measurement(0, 0.5)], [Measurement(1, 0.6)])
    assert unpaired["difference"] is None
    assert study_verdict([one_seed, one_seed]) == [
        "2 of 2 contrasts are inconclusive at this budget (each from one seed, so seed-to-seed "
        "noise is unknown); run more seeds (e.g. seeds = [0, 1, 2]) to separate them."]
    assert study_verdict([spans_zero]) == [
        "1 of 1 contrasts are inconclusive at this budget (their intervals include 0); more "
        "seeds or steps may separate them."]
    assert study_verdict([unpaired, one_seed, spans_zero]) == [
        "3 of 3 contrasts are inconclusive at this budget (1 with no seed that has both runs; "
        "1 from one seed, whose seed-to-seed noise is unknown; 1 whose intervals include 0); "
        "more seeds or steps may separate them."]


def _arm(name, metric, runs):
    return {"arm": name, "metrics": {metric: arm_summary(runs, metric=metric)}}


def test_one_seed_per_arm_gives_a_lead_that_says_it_is_one():
    """Known answer: three arms, one seed each, FD about 15, 140 and 520 with image SE 2:
    the lead ranks them best first with their image intervals; nothing is called conclusive."""
    runs = {"handwritten": _runs([15.0], 2.0), "synthetic": _runs([520.0], 2.0),
            "mixed": _runs([140.0], 2.0)}
    arms = [_arm(a, "fd", r) for a, r in runs.items()]
    contrasts = [contrast("mix", a, "mixed", "fd", runs[a], runs["mixed"])
                 for a in ("handwritten", "synthetic")]
    verdict = study_verdict(contrasts, arms=arms)
    assert len(verdict) == 2 and verdict[0].startswith("2 of 2 contrasts are inconclusive")
    assert verdict[1] == (
        "A lead from one seed per arm, not a conclusion: on FD (lower is better) the arms rank "
        "handwritten 15 (11.1–18.9), mixed 140 (136–144), synthetic 520 (516–524) (in brackets, "
        "each run's 95% interval over its images). Those intervals leave out how far another seed "
        "would move each run; more seeds would test this order.")


def test_the_lead_names_arms_even_one_seed_does_not_order_and_reads_higher_is_better():
    runs = {"a": _runs([0.50], 0.02), "b": _runs([0.52], 0.02), "c": _runs([0.90], 0.02)}
    arms = [_arm(a, "coverage", r) for a, r in runs.items()]
    contrasts = [contrast("f", "a", x, "coverage", runs["a"], runs[x]) for x in ("b", "c")]
    from datakit.study.contrasts import one_seed_lead
    lead = one_seed_lead(contrasts, arms)
    assert lead["evidence"]["order"] == ["c", "b", "a"] and lead["evidence"]["overlapping"] == [["b", "a"]]
    assert "(higher is better)" in lead["sentence"]
    assert "; the intervals of b and a overlap, so even this seed does not order them." in lead["sentence"]


def test_no_lead_once_seeds_can_decide():
    """Control: with three seeds the contrasts themselves answer; no one-seed lead is added."""
    a, b = _runs([70, 72, 69]), _runs([40, 41, 43])
    arms = [_arm("a", "fd", a), _arm("b", "fd", b)]
    from datakit.study.contrasts import one_seed_lead
    assert one_seed_lead([contrast("f", "a", "b", "fd", a, b)], arms) is None
    assert not any("A lead from one seed" in s
                   for s in study_verdict([contrast("f", "a", "b", "fd", a, b)], arms=arms))


def test_a_conclusive_contrast_where_b_is_worse_is_a_warning():
    from datakit.study.contrasts import contrast_finding, study_findings
    # Planted: the minority's label fidelity is about 0.54 below the majority's on every seed
    # (class_skew's contrast), and a treatment arm's FD is about 30 higher (lower is better).
    minority = contrast("class group (skewed)", "majority", "minority", "label_fidelity",
                        _runs([0.90, 0.88, 0.91], 0.01), _runs([0.36, 0.35, 0.37], 0.01))
    minority["arm"] = "skewed"
    fd_worse = contrast("arm", "healthy", "noise", "fd", _runs([40, 41, 43]), _runs([70, 72, 69]))
    for c, worse, better in ((minority, "minority", "majority"), (fd_worse, "noise", "healthy")):
        f = contrast_finding(c)
        assert c["conclusive"] and f["severity"] == "warn" and f["check"] == "contrast"
        assert f"{worse} is worse than {better} on " in f["sentence"]
        assert f"{c['difference']:+.3g}" in f["sentence"]  # by how much, as the table prints it
        assert f["evidence"]["difference"] == c["difference"]
    assert contrast_finding(minority)["sentence"].startswith(
        "skewed: minority is worse than majority on label fidelity (higher is better): "
        "minority − majority = -0.537, 95% interval [")
    # Controls: conclusive and better (FD lower, label fidelity higher), and inconclusive
    better_fd = contrast("arm", "noise", "healthy", "fd", _runs([70, 72, 69]), _runs([40, 41, 43]))
    better_lf = contrast("arm", "a", "b", "label_fidelity", _runs([0.4, 0.41, 0.39], 0.01),
                         _runs([0.8, 0.81, 0.79], 0.01))
    null = contrast("arm", "a", "b", "fd", _runs([40, 43, 38]), _runs([41, 39, 42]))
    assert better_fd["conclusive"] and better_lf["conclusive"] and not null["conclusive"]
    for c in (better_fd, better_lf, null):
        f = contrast_finding(c)
        assert f["severity"] == "info" and f["sentence"] == c["sentence"]
    # the study's findings lead with its answer, best and worst together (here the worse
    # side's interval sits a little further from 0, so it leads); the inconclusive ones are
    # counted in one note
    fs = study_findings([better_fd, null, fd_worse])
    assert [f["severity"] for f in fs] == ["warn", "info", "info", "info"]
    assert fs[1]["sentence"] == better_fd["sentence"] and "1 of 3 contrasts" in fs[3]["sentence"]
    assert fs[0]["evidence"]["answer"] and fs[1]["evidence"]["answer"]
    assert fs[2]["sentence"].startswith("2 of 3 contrasts are conclusive at 95% each and all 2 stand")
    assert "answer" not in fs[2]["evidence"]  # it qualifies the answer; it is not one
    assert study_verdict([better_fd, null, fd_worse]) == [f["sentence"] for f in fs]


def test_the_first_findings_answer_the_question_best_and_worst_together():
    # Planted: five conclusive contrasts. A small but sharp warning (precision, asked by a
    # sweep) used to sort first because warnings did; the answer is the strongest contrast
    # the study file asks for on each side: b much better on FD, b worse on recall.
    from datakit.study.contrasts import study_answer, study_findings
    fd = contrast("domain mix", "goodimg", "fnt", "fd", _runs([900, 910, 905]), _runs([20, 22, 19]))
    recall = contrast("domain mix", "goodimg", "fnt", "recall", _runs([0.6, 0.62, 0.61], 0.01),
                      _runs([0.3, 0.31, 0.29], 0.01))
    cov = contrast("domain mix", "goodimg", "fnt", "coverage", _runs([0.3, 0.32, 0.31], 0.01),
                   _runs([0.5, 0.52, 0.49], 0.01))
    for c in (fd, recall, cov):
        c["asked"] = True
    sweep_warn = contrast("size", "s1", "s2", "precision", _runs([0.70, 0.71, 0.69], 0.001),
                          _runs([0.66, 0.67, 0.65], 0.001))
    assert all(c["conclusive"] for c in (fd, recall, cov, sweep_warn))
    answer = study_answer([sweep_warn, cov, recall, fd], size=2)
    assert answer == [fd, recall]  # the stronger side first (FD), then the strongest worse
    failed = {"check": "diverged", "severity": "fail", "classes": [], "sentence": "Run x diverged.",
              "evidence": {}}
    fs = study_findings([sweep_warn, cov, recall, fd], [failed])
    assert fs[0]["sentence"] == fd["sentence"] and fs[1]["evidence"]["metric"] == "recall"
    # the answer holds up to 4 contrasts; whether they stand as a family, then the failed run
    assert [f["evidence"].get("metric") for f in fs] == ["fd", "recall", "coverage", "precision",
                                                        None, None]
    assert fs[4]["evidence"]["stand"] == 4 and fs[5]["severity"] == "fail"


def test_the_answer_leads_with_the_stronger_side():
    # Planted (class_skew's page): in the balanced control arm, minority is barely better on
    # coverage (+0.017, interval just clear of 0); in the skewed arm it is far worse (-0.36).
    # The sharp worse contrast leads; the weak better one still shows, second.
    from datakit.study.contrasts import study_answer
    control = contrast("class group", "majority", "minority", "coverage",
                       _runs([0.50, 0.51, 0.52], 0.001), _runs([0.52, 0.525, 0.53], 0.001))
    skewed = contrast("class group", "majority", "minority", "coverage",
                      _runs([0.50, 0.51, 0.52], 0.001), _runs([0.15, 0.16, 0.14], 0.001))
    for c in (control, skewed):
        c["asked"] = True
    assert control["conclusive"] and skewed["conclusive"]
    assert study_answer([control, skewed]) == [skewed, control]
    assert study_answer([control]) == [control]  # one side only: it leads


def test_bounded_metrics_keep_their_intervals_in_range():
    # Planted (class_skew's balanced_dcgan): precision 0.7, 0.72 and a diverged 0.0. The
    # t-interval over three seeds reaches past 1 and below 0; a share's interval may not.
    from datakit.study.contrasts import arm_summary
    s = arm_summary(_runs([0.7, 0.72, 0.0], 0.01), metric="precision")
    assert 0.0 <= s["ci_low"] and s["ci_high"] <= 1.0
    assert s["ci_low"] == 0.0 and s["ci_high"] == 1.0  # clipped, not shifted
    fd = arm_summary(_runs([50, 52, 1426], 5.0), metric="fd")
    assert fd["ci_low"] == 0.0 < fd["ci_high"]  # a distance is never negative
    unbounded = arm_summary(_runs([0.7, 0.72, 0.0], 0.01))
    assert unbounded["ci_low"] < 0  # control: without the metric's bounds
    lf = contrast("f", "a", "b", "label_fidelity", _runs([0.99, 0.0, 0.98], 0.01),
                  _runs([0.0, 0.99, 0.01], 0.01))
    assert -1.0 <= lf["ci_low"] and lf["ci_high"] <= 1.0
    share = arm_summary(_runs([0.99, 0.2, 0.98], 0.01), metric="generated_wild_share")
    assert share["ci_high"] <= 1.0


def test_every_contrast_sentence_counts_its_seeds_and_names_left_out_runs():
    two = contrast("f", "a", "b", "fd", _runs([70, 72]), _runs([40, 41]),
                   left_out=["b seed 2"])
    assert two["n_seeds"] == 2 and two["left_out"] == ["b seed 2"]
    assert "over 2 seeds (b seed 2 left out: it diverged in training)" in two["sentence"]
    for c in (contrast("f", "a", "b", "fd", _runs([70, 72, 69]), _runs([40, 41, 43])),
              contrast("f", "a", "b", "fd", _runs([40, 43, 38]), _runs([41, 39, 42]))):
        assert "over 3 seeds" in c["sentence"]
    assert "from one seed" in contrast("f", "a", "b", "fd", _runs([70]), _runs([10]))["sentence"]
    none = contrast("f", "a", "b", "fd", [Measurement(0, 1.0)], [Measurement(1, 2.0)])
    assert "over 0 seeds" in none["sentence"]
