"""Diverged runs: named as fail findings, shown apart, and left out of arm means and
contrasts, which say so and count the seeds they used (on fake runs: nothing is trained)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from datakit.study.arms import Reference
from datakit.study.divergence import _read_metrics, audit_signs, training_signs
from datakit.study.spec import parse_study
from fake_runs import fake_audit, stroke_manifest, written_study


def _metrics(tmp_path, **columns):
    """metrics.csv as a run writes it (a step without a probe reading leaves its cell empty;
    a NaN loss is written "nan"), read back as the study reads it."""
    steps = np.arange(0, 110, 10)
    base = {"step": steps, "loss_d": np.full(len(steps), 1.2), "loss_g": np.full(len(steps), 0.9)}
    pd.DataFrame({**base, **columns}).to_csv(tmp_path / "metrics.csv", index=False)
    return _read_metrics(tmp_path)


def test_training_signs_name_nan_blow_up_and_probe_collapse(tmp_path):
    read = lambda **c: _metrics(tmp_path, **c)  # noqa: E731
    assert training_signs(read()) == []  # control: a steady run
    nan = read(loss_g=["0.9"] * 10 + ["nan"])
    assert training_signs(nan) == ["NaN or infinite values in metrics.csv (loss_g)"]
    blown = read(loss_d=[1.2] * 9 + [40.0, 80.0])
    assert training_signs(blown) == ["loss_d blew up to 80 (median 1.2)"]
    probe = read(probe_label_fidelity=[np.nan] * 5 + [0.5, 0.8, 0.9, 0.9, 0.3, 0.1])
    assert training_signs(probe) == ["the probe's label fidelity fell to 0.1 from 0.9"]
    fd = read(probe_fd=[np.nan] * 5 + [300.0, 120.0, 60.0, 50.0, 90.0, 400.0])
    assert training_signs(fd) == ["the probe's FD rose to 400 from 50"]
    # a probe still improving, and probe cells left empty between readings, are healthy
    assert training_signs(read(probe_fd=[np.nan] * 5 + [300.0, 200.0, 150, 120, 110, 100])) == []


def test_audit_signs_are_read_against_the_arm_s_other_seeds():
    entry = lambda v: {"value": v}  # noqa: E731
    dead = {"precision": entry(0.0), "recall": entry(0.0), "coverage": entry(0.004),
            "fd": entry(1426.0)}
    mates = [{"precision": entry(0.7), "recall": entry(0.3), "coverage": entry(0.5),
              "fd": entry(50.0)}, {"precision": entry(0.72), "recall": entry(0.35),
                                   "coverage": entry(0.55), "fd": entry(54.0)}]
    assert audit_signs(dead, mates) == [
        "precision, recall and coverage are all near 0 (0, 0, 0.004) while its arm's other seeds "
        "reach 0.71, 0.325, 0.525", "FD 1426 is 27× its arm's other seeds' (52)"]
    # controls: an arm whose every seed never learned (a tiny budget) is a result, not a
    # failed run; a weak but live run is healthy; a lone seed has nothing to be read against
    assert audit_signs(dead, [dead, dead]) == []
    assert audit_signs({**mates[0], "coverage": entry(0.2)}, mates[1:]) == []
    assert audit_signs(dead, []) == []
    lf = audit_signs({"label_fidelity": entry(0.0)}, [{"label_fidelity": entry(0.9)}])
    assert lf == ["label fidelity is near 0 (0; its arm's other seeds 0.9)"]


def test_a_diverged_run_is_a_fail_finding_and_left_out_of_means_and_contrasts(tmp_path):
    # Planted (class_skew's balanced_dcgan seed 2): one run of arm "b" ends with precision,
    # recall and coverage at 0 and FD 1,426. Before, it entered b's mean (FD interval below 0,
    # precision's above 1) and the contrasts used it silently.
    names = {"0": 20, "1": 20}
    ms = {a: stroke_manifest(tmp_path / "manifests" / f"{a}.parquet", names, 8, seed=i)
          for i, a in enumerate(("a", "b"))}
    study = parse_study({"study": {"name": "div", "seeds": [0, 1, 2]},
                         "arm": [{"name": a, "manifest": str(ms[a].path)} for a in ms],
                         "compare": {"contrasts": [["a", "b"]], "reference": "a"}})

    def audit_for(arm, seed, m):
        if arm == "b" and seed == 2:
            return fake_audit(m, fd=1426.0, values={"precision": 0.0, "recall": 0.0,
                                                    "coverage": 0.0})
        return fake_audit(m, fd=20.0 + seed + 5 * (arm == "b"),
                          values={"precision": 0.6 + 0.01 * seed, "recall": 0.4, "coverage": 0.5})
    ref = Reference("a", ms["a"].path, ms["a"].checksum)
    report, path = written_study(tmp_path, study, ms, ref, audit_for)
    data = json.loads(path.read_text())

    diverged = [(r["arm"], r["seed"]) for r in data["runs"] if r["diverged"]]
    assert diverged == [("b", 2)]
    fails = [f for f in data["findings"] if f["severity"] == "fail"]
    assert [f["check"] for f in fails] == ["diverged"]
    assert fails[0]["sentence"] == (
        "Run b seed 2 diverged in training: precision, recall and coverage are all near 0 "
        "(0, 0, 0) while its arm's other seeds reach 0.605, 0.4, 0.5; FD 1426 is 56× its arm's "
        "other seeds' (25.5). It is left out of its arm's means and of every contrast, which "
        "count the seeds they used.")
    b = next(a for a in data["arms"] if a["arm"] == "b")
    assert b["n_seeds"] == 2 and b["left_out"] == [2]
    assert b["metrics"]["fd"]["mean"] == 25.5 and b["metrics"]["fd"]["n_seeds"] == 2
    for c in data["contrasts"]:
        assert c["n_seeds"] == 2 and c["left_out"] == ["b seed 2"]
        assert "over 2 seeds (b seed 2 left out: it diverged in training)" in c["sentence"]
    fd = next(c for c in data["contrasts"] if c["metric"] == "fd")
    assert fd["difference"] == 5.0  # on the healthy seeds alone (1,426 would make it +475)
    for a in data["arms"]:  # every bounded interval in range
        for m in ("precision", "recall", "coverage"):
            v = a["metrics"][m]
            assert 0 <= v["ci_low"] <= v["ci_high"] <= 1, (a["arm"], m, v)
    # the page names the run apart from the healthy ones
    html = report.read_text()
    assert "Failed runs" in html and "Run b seed 2 diverged in training" in html
