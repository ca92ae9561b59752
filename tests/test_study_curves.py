"""The curves the founding story asks for (issue 20, item 3), on fake runs: a class-skew sweep
whose x-axis is the numeric majority:minority ratio, with minority and majority curves; the
budget and whether each arm's runs plateaued by their own probe; and the shipped study files
that run them (parsed, never trained)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from datakit.audit.schema import FloorTest
from datakit.errors import StudyError
from datakit.study.arms import Reference
from datakit.study.spec import load_study, parse_study
from fake_runs import fake_audit, stroke_manifest, written_study

AUDITS = Path(__file__).resolve().parents[1] / "audits"

SKEW_SWEEP = {
    "study": {"name": "skew", "seeds": [0, 1, 2]},
    "ingest": {"d": {"source": "digits"}},
    "train": {"model": "acgan", "label_dist": "train"},
    "sweep": [{"name": "skew", "from": ["d"], "factor": "skew_ratio", "values": [1, 5, 20],
               "compose": {"size": 400, "holdout": 0.2}}],
    "compare": {"reference": "skew_1", "factor": "skew_ratio",
                "class_groups": {"majority": ["0", "1"], "minority": ["2", "3"]}},
}


def test_a_skew_ratio_sweep_sets_the_step_skew_and_keeps_the_number_as_its_level():
    study = parse_study(SKEW_SWEEP)
    assert [a.name for a in study.arms] == ["skew_1", "skew_5", "skew_20"]
    assert [a.compose["skew"] for a in study.arms] == ["step:1.0", "step:0.2", "step:0.05"]
    assert study.arms[2].compose == {"size": 400, "holdout": 0.2, "skew": "step:0.05"}
    # the level is the ratio itself: the curve's x-axis reads 1, 5, 20
    assert [a.levels for a in study.arms][2] == {"sweep": "skew", "factor": "skew_ratio",
                                                 "value": 20}
    assert study.contrast_factors == ["skew_ratio"]


@pytest.mark.parametrize("values, compose, message", [
    ([1, 0.5], {}, "the study sweep 1 (skew): skew_ratio values must be numbers of at least 1 "
     "(a majority class's image count over a minority class's), e.g. values = [1, 2, 5, 10, 20]; "
     "got 0.5."),
    ([1, "step:0.1"], {}, "the study sweep 1 (skew): skew_ratio values must be numbers of at "
     "least 1 (a majority class's image count over a minority class's), e.g. values = "
     "[1, 2, 5, 10, 20]; got 'step:0.1'."),
    ([1, 2], {"skew": "step:0.5"}, "the study sweep 1 (skew): factor skew_ratio sets compose "
     "option `skew` itself; remove `skew` from the sweep's compose table."),
])
def test_a_bad_skew_ratio_sweep_is_a_one_line_error(values, compose, message):
    bad = json.loads(json.dumps(SKEW_SWEEP))
    bad["sweep"][0].update(values=values, compose=compose)
    with pytest.raises(StudyError) as e:
        parse_study(bad)
    assert str(e.value) == message


def _skew_manifests(tmp_path, study):
    """Per arm, 4 classes: "0" and "1" at R times the count of "2" and "3"."""
    out = {}
    for i, arm in enumerate(study.arms):
        r = arm.levels["value"]
        counts = {"0": 10 * r, "1": 10 * r, "2": 10, "3": 10}
        out[arm.name] = stroke_manifest(tmp_path / "manifests" / f"{arm.name}.parquet", counts, 8,
                                        seed=i)
    return out


def _planted_audit(arm, seed, m):
    """Minority label fidelity 0.9 − 0.02 R (± 0.01 over seeds), majority 0.95; minority
    recall 0.6 − 0.01 R; the generator halves the minority's share at every ratio."""
    r = int(arm.split("_")[1])
    t = m.table
    train = {c: float((t["class_name"] == c).mean()) for c in ("0", "1", "2", "3")}
    minority = {c: 0.5 * train[c] for c in ("2", "3")}
    rest = (1 - sum(minority.values())) / 2
    audit = fake_audit(m, generated_shares={"0": rest, "1": rest, **minority})
    for row in audit.per_class:
        small = row.class_name in ("2", "3")
        row.metrics["label_fidelity"] = (0.9 - 0.02 * r + 0.01 * (seed - 1)) if small else 0.95
        recall = 0.6 - 0.01 * r if small else 0.8
        row.vs_floor["recall"] = FloorTest(recall, 0.9, recall - 0.9, recall - 1.0, recall - 0.8,
                                           40, 0.02, "higher", False)
    return audit


def test_the_class_group_curve_follows_the_ratio_with_bands_over_seeds(tmp_path):
    # Before: the sweep could only swing `skew` as strings ("step:0.05") and study.json's
    # curve held whole-set metrics alone; the minority's curve was nowhere.
    study = parse_study(SKEW_SWEEP)
    ms = _skew_manifests(tmp_path, study)
    ref = Reference("skew_1", ms["skew_1"].path, ms["skew_1"].checksum)
    report, path = written_study(tmp_path, study, ms, ref, _planted_audit)
    data = json.loads(path.read_text())
    assert data["class_groups"] == {"majority": ["0", "1"], "minority": ["2", "3"]}
    group = [r for r in data["curve"] if r["class_group"]]
    minority_lf = [r for r in group if r["class_group"] == "minority"
                   and r["metric"] == "label_fidelity"]
    assert [r["value"] for r in minority_lf] == [1, 5, 20]  # numbers, in order
    assert [round(r["mean"], 6) for r in minority_lf] == [0.88, 0.8, 0.5]
    for r in minority_lf:
        assert r["n_seeds"] == 3 and r["ci_low"] < r["mean"] < r["ci_high"]
        assert r["factor"] == "skew_ratio" and r["sweep"] == "skew"
    majority_lf = [r["mean"] for r in group if r["class_group"] == "majority"
                   and r["metric"] == "label_fidelity"]
    assert majority_lf == pytest.approx([0.95] * 3)
    recall = {r["value"]: r["mean"] for r in group if r["class_group"] == "minority"
              and r["metric"] == "recall"}
    assert recall == pytest.approx({1: 0.59, 5: 0.55, 20: 0.4})  # read from vs_floor.recall
    ratio = [r for r in group if r["class_group"] == "minority"
             and r["metric"] == "generated_share_ratio"]
    assert [r["mean"] for r in ratio] == pytest.approx([0.5] * 3)
    share = {r["value"]: r["mean"] for r in group if r["class_group"] == "minority"
             and r["metric"] == "generated_share"}
    assert share == pytest.approx({1: 0.25, 5: 1 / 12, 20: 1 / 42})  # half the training share
    # whole-set rows stay, without a group
    assert any(r["class_group"] is None and r["metric"] == "fd" for r in data["curve"])
    # curve.csv holds the same rows, the group in its last column
    csv = pd.read_csv(tmp_path / "curve.csv", keep_default_na=False)
    assert list(csv.columns)[-1] == "class_group"
    lf = csv[(csv["class_group"] == "minority") & (csv["metric"] == "label_fidelity")]
    assert list(lf["value"]) == [1, 5, 20] and np.allclose(lf["mean"], [0.88, 0.8, 0.5])
    html = report.read_text()
    assert "Class groups along the sweep" in html and 'alt="class-group curve"' in html
    assert "majority: 0, 1; minority: 2, 3" in html


def _probe_csv(run_dir, readings, column="probe_label_fidelity"):
    """metrics.csv with one probe reading every 4 steps (the losses as the trainer logs them)."""
    steps = 4 * np.arange(1, len(readings) + 1)
    pd.DataFrame({"step": steps, "loss_d": 1.0, "loss_g": 1.0, column: readings}).to_csv(
        run_dir / "metrics.csv", index=False)


RISING = [0.1, 0.3, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85]   # +13% in the last third
FLAT = [0.1, 0.5, 0.7, 0.8, 0.81, 0.8, 0.81, 0.805, 0.81]    # +1.2%: within 2%


@pytest.mark.parametrize("readings, column, stopped, state", [
    (RISING, "probe_label_fidelity", False, "improving"),
    (FLAT, "probe_label_fidelity", False, "plateaued"),
    (RISING[:5], "probe_label_fidelity", False, "unknown"),  # too few to split
    (RISING[:5], "probe_label_fidelity", True, "plateaued"),  # the trainer stopped it
    ([90, 40, 20, 12, 11, 10.9, 10.8, 10.9, 10.85], "probe_fd", False, "plateaued"),
    ([90, 40, 20, 15, 12, 10, 8, 6, 5], "probe_fd", False, "improving"),
])
def test_a_run_s_plateau_is_read_from_its_probe(tmp_path, readings, column, stopped, state):
    from datakit.study.plateau import probe_plateau
    _probe_csv(tmp_path, readings, column)
    p = probe_plateau(tmp_path, stopped=stopped)
    assert p["state"] == state and p["criterion"] == column and p["probes"] == len(readings)
    if len(readings) >= 6:
        assert p["from_step"] == 28 and p["last_third"] == (max if "label" in column else min)(
            readings[-3:])


def test_the_page_states_the_budget_and_which_arms_had_plateaued(tmp_path):
    # Before: the budget line said "5000 steps ..., scaled by --budget 0.2" (not the steps
    # run, nor the images seen) and only whether the trainer stopped a run; a largest arm
    # still improving at the end passed unsaid.
    study = parse_study({
        "study": {"name": "size", "seeds": [0, 1, 2]},
        "ingest": {"d": {"source": "digits"}},
        "train": {"model": "acgan", "steps": 40, "batch_size": 8, "probe_every": 4},
        "sweep": [{"name": "d", "from": ["d"], "factor": "size", "values": [40, 200]}],
        "compare": {"reference": "d_200", "factor": "size"}})
    ms = {a.name: stroke_manifest(tmp_path / "manifests" / f"{a.name}.parquet",
                                  {c: a.levels["value"] // 4 for c in "0123"}, 8, seed=i)
          for i, a in enumerate(study.arms)}
    ref = Reference("d_200", ms["d_200"].path, ms["d_200"].checksum)

    def edit(arm, seed, run_dir):
        _probe_csv(run_dir, RISING if arm == "d_200" and seed < 2 else FLAT)
    report, path = written_study(tmp_path, study, ms, ref, lambda a, s, m: fake_audit(m),
                                 edit_run=edit)
    data = json.loads(path.read_text())
    budget = data["budget"]
    assert [(a["arm"], a["plateaued"], a["improving"], a["images_seen"]) for a in budget["arms"]] \
        == [("d_40", 3, 0, 320), ("d_200", 1, 2, 320)]
    assert budget["description"] == (
        "40 steps of 8 images: 320 images seen per run, every arm and seed alike; a probe every "
        "4 steps. 0 of 6 runs stopped on a plateau. Plateaued by their own probe (runs): d_40 3 "
        "of 3 (10 passes over its training images); d_200 1 of 3 (2 passes over its training "
        "images).")
    (warn,) = [f for f in data["findings"] if f["check"] == "plateau"]
    assert warn["severity"] == "warn" and warn["sentence"] == (
        "d_200: 2 of 3 runs were still improving when training ended (best probe label fidelity "
        "before the last third of training → in it: 0.7 → 0.85, 0.7 → 0.85); this arm's "
        "numbers are short of what a longer budget reaches.")
    assert data["runs"][3]["probe_plateau"]["state"] == "improving"
    html = report.read_text()
    first_screen = html[:html.index("Contrasts: what changed")]
    assert "Budget: 40 steps of 8 images: 320 images seen per run" in first_screen
    assert "d_200: 2 of 3 runs were still improving" in first_screen
    assert "still improving</b>" in html  # the runs table, per run


def test_every_run_plateaued_is_one_info_line():
    from datakit.study.plateau import plateau_findings
    per_arm = [{"arm": "a", "runs": 3, "plateaued": 3, "improving": 0, "unknown": 0}]
    (f,) = plateau_findings([], per_arm)
    assert f["severity"] == "info" and f["sentence"] == (
        "Every run had plateaued by its own training probe when training ended (its best "
        "reading in the last third of training within 2% of its best before, or stopped on a "
        "plateau).")
    (f,) = plateau_findings([], [{**per_arm[0], "plateaued": 0, "unknown": 3}])
    assert f["sentence"] == ("Whether the runs had plateaued is unknown: their training logged "
                             "fewer than 6 probe readings (set probe_every to read it).")
    # A probe was set, but the budget's steps leave room for one reading (250 of 300 steps).
    runs = [{"arm": "a", "probe_plateau": {"state": "unknown", "probes": p}} for p in (1, 1, 0)]
    (f,) = plateau_findings(runs, [{**per_arm[0], "plateaued": 0, "unknown": 3}])
    assert f["sentence"] == ("Whether the runs had plateaued is unknown: each logged at most 1 "
                             "probe reading, fewer than the 6 needed (a larger --budget, or a "
                             "smaller probe_every, gives more).")


def test_the_shipped_curve_studies_parse_as_the_founding_story_asks():
    # Parsed with the study loader (every key, type and range checked), never trained here.
    skew = load_study(AUDITS / "class_skew_sweep.toml")
    assert [a.name for a in skew.arms] == ["skew_1", "skew_2", "skew_5", "skew_10", "skew_20"]
    assert [a.levels["value"] for a in skew.arms] == [1, 2, 5, 10, 20]
    assert {a.levels["factor"] for a in skew.arms} == {"skew_ratio"}
    assert skew.arms[-1].compose["skew"] == "step:0.05" and skew.seeds == [0, 1, 2]
    assert skew.train["model"] == "acgan" and skew.train["label_dist"] == "train"
    assert skew.class_groups == {"majority": list("01234"), "minority": list("56789")}
    assert skew.reference == "skew_1" and skew.contrast_factors == ["skew_ratio"]
    assert skew.train["probe_every"] and skew.train["plateau_patience"]

    size = load_study(AUDITS / "mnist_size.toml")
    assert [a.levels["value"] for a in size.arms] == [500, 2000, 10000, 60000]
    assert size.seeds == [0, 1, 2] and size.reference == "mnist_60000"
    # probes on, so the page can say whether the largest arm had plateaued
    assert size.train["probe_every"] == 250 and size.train["plateau_patience"] == 4
    assert size.train["steps"] == 6000
    # the 1:1 vs 10:1 study stays beside the sweep
    assert [a.name for a in load_study(AUDITS / "class_skew.toml").arms][:2] == [
        "balanced_acgan", "skewed_acgan"]


def _runs_with_shares(arm, minority_ratios, train_minority=0.1):
    """Study runs whose two minority classes ("2", "3") hold ``train_minority`` of the training
    images and get ``ratio ×`` that share of the samples (the judge's reading), per seed."""
    runs = []
    for seed, ratio in enumerate(minority_ratios):
        t_min, t_maj = train_minority / 2, (1 - train_minority) / 2
        g_min = t_min * ratio
        g_maj = (1 - 2 * g_min) / 2
        runs.append({"arm": arm, "seed": seed, "diverged": False, "per_class": [
            {"class_name": c, "train_share": t, "generated_share": g}
            for c, t, g in (("0", t_maj, g_maj), ("1", t_maj, g_maj), ("2", t_min, g_min),
                            ("3", t_min, g_min))]})
    return runs


@pytest.mark.parametrize("ratios,severity,verb,numbers", [
    ([0.50, 0.55, 0.45], "warn", "amplifies the class skew", "(2, 3) 0.500× as often as"),
    ([1.90, 2.00, 2.10], "info", "softens the class skew", "(2, 3) 2.000× as often as"),
    ([0.90, 1.10, 1.00], "info", "keeps the class shares, as far as these seeds tell",
     "(2, 3) 1.000× as often as"),
])
def test_the_minority_share_says_whether_the_generator_amplifies_the_skew(ratios, severity, verb,
                                                                          numbers):
    # Planted: a 20:1 set's minority read at half its training share (amplified), at twice
    # it (softened), or around it (kept); a balanced arm has no minority and no finding.
    from datakit.study.class_groups import amplification_findings
    study = parse_study(SKEW_SWEEP)
    skewed = next(a.name for a in study.arms if a.name == "skew_20")
    runs = _runs_with_shares(skewed, ratios) + _runs_with_shares("skew_1", [0.5, 0.5, 0.5], 0.5)
    (f,) = amplification_findings(study, runs)
    assert (f["severity"], f["classes"]) == (severity, ["2", "3"])
    assert f["sentence"].startswith(f"skew_20: the generator {verb}: the judge reads its samples "
                                    "as the minority classes (2, 3) ")
    assert numbers in f["sentence"] and "over 3 seeds" in f["sentence"]
    m = f["evidence"]["ratio"]["minority"]
    assert m["ci_low"] <= m["mean"] <= m["ci_high"]


def test_the_amplification_finding_and_the_curve_print_one_interval_for_one_number():
    from datakit.study.class_groups import amplification_findings, class_group_curve
    study = parse_study(SKEW_SWEEP)
    runs = _runs_with_shares("skew_20", [0.9, 1.2, 1.05]) + _runs_with_shares("skew_5", [1.0] * 3)
    (f,) = [f for f in amplification_findings(study, runs) if f["evidence"]["arm"] == "skew_20"]
    (row,) = [r for r in class_group_curve(study, runs) if r["value"] == 20
              and r["class_group"] == "minority" and r["metric"] == "generated_share_ratio"]
    m = f["evidence"]["ratio"]["minority"]
    assert (m["mean"], m["ci_low"], m["ci_high"]) == (row["mean"], row["ci_low"], row["ci_high"])
