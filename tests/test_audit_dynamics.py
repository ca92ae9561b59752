"""The dynamics check reads metrics.csv: did the discriminator win, and did an ACGAN's
auxiliary classifier learn the labels? Planted cases and healthy controls, on written logs and
on real trainings (the embedded digits, with true and with shuffled labels)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from datakit.audit.checks import dynamics


def _features(run_dir, judge_accuracy=0.99, classes=10, held=1000):
    """What the check reads besides metrics.csv: the run folder and the judge's held-out readings."""
    labels = np.arange(held) % classes
    pred = labels.copy()
    pred[: round(held * (1 - judge_accuracy))] = (labels[: round(held * (1 - judge_accuracy))] + 1) % classes
    return SimpleNamespace(run=SimpleNamespace(run_dir=run_dir), held_labels=labels, held_pred=pred,
                           classes=[str(c) for c in range(classes)])


def _log(run_dir, acc_real, acc_fake, acc_aux=None):
    n = len(acc_real)
    pd.DataFrame({"step": np.arange(1, n + 1) * 10, "acc_real": acc_real, "acc_fake": acc_fake,
                  "acc_aux": acc_aux if acc_aux is not None else [None] * n}).to_csv(
        run_dir / "metrics.csv", index=False)


def _findings(run_dir, **kw):
    return dynamics.check(_features(run_dir, **kw), None).findings


def test_a_discriminator_that_won_is_a_warning_and_equilibrium_is_not(tmp_path):
    _log(tmp_path, [0.7] * 10 + [0.99] * 10, [0.7] * 10 + [0.97] * 10)
    (won,) = _findings(tmp_path)
    assert won.severity == "warn" and won.sentence.startswith(
        "The discriminator won: its accuracy went from 70% in the first tenth of training to 98% in the last")
    _log(tmp_path, [0.7] * 10 + [0.5] * 10, [0.7] * 10 + [0.52] * 10)
    (calm,) = _findings(tmp_path)
    assert calm.severity == "info" and "to 51% in the last (0.5 is the adversarial equilibrium)" in calm.sentence


def test_no_log_no_finding_and_a_dcgan_has_no_auxiliary_reading(tmp_path):
    assert _findings(tmp_path) == []
    _log(tmp_path, [0.6] * 20, [0.6] * 20)  # acc_aux empty, as a DCGAN logs it
    assert [f.evidence.get("metric") for f in _findings(tmp_path)] == [None]


@pytest.mark.parametrize("aux, judge, severity", [
    (0.50, 0.99, "warn"),    # the student's ACGAN: stuck near half, a judge reads 99%
    (0.97, 0.99, "info"),    # healthy
    (0.70, 0.80, "info"),    # a hard set (the judge reads 80%): 0.70 is above 0.8 × 0.80
    (0.60, 0.80, "warn"),
])
def test_the_auxiliary_classifier_is_weak_below_four_fifths_of_the_judge(tmp_path, aux, judge, severity):
    _log(tmp_path, [0.5] * 20, [0.5] * 20, [0.2] * 10 + [aux] * 10)
    (_, reading) = _findings(tmp_path, judge_accuracy=judge)
    assert reading.severity == severity and reading.evidence["value"] == pytest.approx(aux)
    assert reading.evidence["floor"] == pytest.approx(judge)
    if severity == "warn":
        assert reading.sentence == (
            f"The discriminator's auxiliary classifier read only {aux:.0%} of the real images' labels "
            f"in the last tenth of training (from 20% in the first; chance is 10%), against {judge:.0%} "
            "for the judge on held-out real images: its class head gives the generator little class "
            "signal, so samples may not look like the class they were asked for (see label fidelity).")


@pytest.mark.slow
def test_on_real_trainings_shuffled_labels_are_caught_and_true_labels_are_not(tmp_path):
    """Planted on a real run: the same ACGAN, 150 steps on the embedded digits, once with their
    labels and once with the labels shuffled across images (nothing to learn). Measured: about
    95% against 13% over the last tenth."""
    from datakit import ingest, write_manifest
    from datakit.training import TrainConfig, train
    digits = ingest("digits", out=tmp_path / "m")
    shuffled_table = digits.table.copy()
    shuffled_table["label"] = np.random.default_rng(0).permutation(shuffled_table["label"].to_numpy())
    shuffled_table["class_name"] = [digits.vocabulary[i] for i in shuffled_table["label"]]
    shuffled = write_manifest(tmp_path / "m" / "shuffled.parquet", shuffled_table, np.asarray(digits.pixels),
                              {"command": "test: labels shuffled"}, classes=list(digits.vocabulary))
    severities = {}
    for name, manifest in (("true", digits), ("shuffled", shuffled)):
        run = train(TrainConfig(manifest=str(manifest.path), out=str(tmp_path / name), model="acgan",
                                steps=150, width=8, batch_size=64, log_every=10, n_generate=2, seed=0))
        aux = [f for f in dynamics.check(_features(run), None).findings if f.evidence.get("metric") == "acc_aux"]
        severities[name] = (aux[0].severity, aux[0].evidence["value"])
    assert severities["true"][0] == "info" and severities["true"][1] > 0.85
    assert severities["shuffled"][0] == "warn" and severities["shuffled"][1] < 0.3
