"""The verdict's rules on floor tests with known answers: a gap every class shares is the run's,
said once; a class that stands out is named with both numbers; untested rows say so."""
import numpy as np

from datakit.audit import verdict
from datakit.audit.schema import Finding, FloorTest, Metric

CLASSES = [str(d) for d in range(10)]


def _test(value, floor, better="higher", spread=0.01, min_effect=0.02):
    diff = value - floor
    worse = (diff <= -min_effect) if better == "higher" else (diff >= min_effect)
    return FloorTest(value, floor, diff, diff - 2 * spread, diff + 2 * spread, 200, min_effect, better, bool(worse))


def _reps(tests, spread=0.01, seed=0):
    rng = np.random.default_rng(seed)
    return {name: {c: t[name].difference + rng.normal(0, spread, 100) for c, t in tests.items() if name in t}
            for name in ("recall", "fd", "coverage", "label_fidelity", "modes", "share", "close_pairs")}


def _decide(tests, counts=None):
    reps = _reps(tests)
    total = {c: (False, f"class {c}: not collapsed") for c in CLASSES}
    counts = counts or {c: (100, 100) for c in CLASSES}
    return verdict.decide(CLASSES, tests, reps, total, counts, 30)


def _fail(c, test):
    return Finding("modes" if test == "recall" else "quality", "fail", [c], f"class {c} worse on {test}",
                   {"test": test})


def test_every_class_below_real_data_is_one_run_level_finding_and_no_class_fails():
    recall = dict(zip(CLASSES, np.linspace(0.55, 0.85, 10)))
    tests = {c: {"recall": _test(recall[c], 0.95)} for c in CLASSES}
    v, out_of = _decide(tests)
    assert not any(x.failed or x.collapsed for x in v.values())
    found = verdict.findings(CLASSES, tests, v, out_of, [_fail(c, "recall") for c in CLASSES])
    assert [f.severity for f in found] == ["warn"] and found[0].classes == []
    assert found[0].sentence.startswith("The run is below real data on recall in every class: "
                                        "recall 55%–85% against 95% for held-out real images.")


def test_a_class_far_below_its_siblings_is_collapsed_with_both_numbers():
    recall = {**dict(zip(CLASSES, np.linspace(0.55, 0.85, 10))), "3": 0.04}
    tests = {c: {"recall": _test(recall[c], 0.95)} for c in CLASSES}
    v, out_of = _decide(tests)
    assert [c for c in CLASSES if v[c].collapsed] == ["3"] and v["3"].failure_reasons == ["recall"]
    found = verdict.findings(CLASSES, tests, v, out_of, [_fail(c, "recall") for c in CLASSES])
    named = [f for f in found if f.severity == "fail"]
    assert len(named) == 1 and named[0].classes == ["3"] and named[0].check == "modes"
    assert named[0].sentence.startswith("Class 3 collapsed: its samples reach 4% of its real images (4% of what "
                                        "held-out real images reach) while the run's other classes reach 58%–89%")
    # its evidence says why it is collapsed, not the total-collapse rule's "not collapsed"
    assert v["3"].collapse_evidence.startswith("Class 3 stands out: its samples reach 4%")
    assert "not collapsed" not in v["3"].collapse_evidence
    # the others are still below real data: said once, about the run, without class 3
    warn = [f for f in found if f.severity == "warn"][0]
    assert "9 of 10 classes" in warn.sentence and "3" not in warn.evidence["classes"]


def test_fd_stands_out_fails_a_class_without_collapsing_it():
    fd = {**{c: 9.0 * (10 + i) for i, c in enumerate(CLASSES)}, "8": 9.0 * 200}
    tests = {c: {"fd": _test(fd[c], 9.0, better="lower", spread=5, min_effect=4.5)} for c in CLASSES}
    v, _ = _decide(tests)
    assert [c for c in CLASSES if v[c].failed] == ["8"] and not v["8"].collapsed


def test_a_class_drawn_in_one_style_stands_out_on_near_duplicate_pairs():
    # one style of class 5 drawn over and over: 2.7% of its pairs are near-duplicates against
    # 0.26% for held-out images, while its siblings sit at 0.3-2.9x their floors
    close = {**{c: 0.0025 * (0.3 + 0.3 * i) for i, c in enumerate(CLASSES)}, "5": 0.027}
    tests = {c: {"close_pairs": _test(close[c], 0.0025, better="lower", spread=0.001, min_effect=0.01)}
             for c in CLASSES}
    v, out_of = _decide(tests)
    assert [c for c in CLASSES if v[c].collapsed] == ["5"] and v["5"].failure_reasons == ["close_pairs"]
    found = verdict.findings(CLASSES, tests, v, out_of, [Finding("collapse", "fail", ["5"], "many copies",
                                                                 {"test": "close_pairs"})])
    assert found[0].sentence.startswith(
        "Class 5 collapsed: 2.7% of its sample pairs are near-duplicates, 10.8× the share among held-out real "
        "images (0.2%), while the run's other classes sit at 0.3×–3.0× theirs")
    # healthy control: every class within a few times its floor, none named
    tests = {c: {"close_pairs": _test(0.0025 * (0.3 + 0.3 * i), 0.0025, better="lower", spread=0.001,
                                      min_effect=0.01)} for i, c in enumerate(CLASSES)}
    v, _ = _decide(tests)
    assert not any(x.collapsed or x.failed for x in v.values())


def test_outright_failures_need_no_siblings():
    tests = {c: {"label_fidelity": _test(0.95, 0.97), "share": _test(1.0, 1.0, better="equal")} for c in CLASSES}
    tests["4"] = {"label_fidelity": _test(0.30, 0.97), "share": FloorTest(0.1, 1.0, -0.9, -0.95, -0.85, 200,
                                                                           2.0, "equal", True)}
    v, _ = _decide(tests)
    assert v["4"].failure_reasons == ["label_fidelity", "share"] and v["4"].failed
    assert not any(v[c].failed for c in CLASSES if c != "4")


def test_a_class_with_too_few_images_reads_untested():
    tests = {c: {"recall": _test(0.9, 0.95)} for c in CLASSES}
    counts = {**{c: (100, 100) for c in CLASSES}, "1": (21, 100)}
    v, _ = _decide(tests, counts)
    assert v["1"].untested == "untested (n = 21 held-out; 30 needed)" and v["0"].untested == ""


def test_the_summary_sentence_answers_both_questions():
    recall = {**dict(zip(CLASSES, np.linspace(0.55, 0.85, 10))), "3": 0.04}
    tests = {c: {"recall": _test(recall[c], 0.95)} for c in CLASSES}
    v, _ = _decide(tests, {**{c: (100, 100) for c in CLASSES}, "9": (12, 100)})
    fd = Metric(105.0, 9.2, 100.0, 110.0, "lower", 0.0, 1000)
    assert verdict.summary_sentence({"fd": fd}, v) == (
        "Far from real data (FD 105 against 9.2 for held-out real images); 1 class stands out: "
        "3 collapsed (recall); 1 class untested (9: too few held-out images; hold out more real "
        "images with datakit compose --holdout).")
    v, _ = _decide(tests, {**{c: (100, 100) for c in CLASSES}, "8": (12, 100), "9": (100, 7)})
    assert verdict.summary_sentence({"fd": fd}, v).endswith(
        "2 classes untested (8, 9: too few held-out and generated images; hold out more real images "
        "with datakit compose --holdout and generate more samples with datakit train --resume --n-generate).")
    healthy = {c: verdict.ClassVerdict(False, "", False, [], "") for c in CLASSES}
    assert verdict.summary_sentence({"fd": Metric(9.5, 9.2, 9, 10, "lower", 0.0, 1000)}, healthy) == (
        "Close to real data (FD 9.5 against 9.2 for held-out real images); no class stands out.")
