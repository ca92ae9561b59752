"""The in-training probe and the plateau stop."""
from __future__ import annotations

import json

import pytest

from datakit.errors import TrainingError
from datakit.training import TrainConfig
from datakit.training.probe import PlateauState, update_plateau


def test_plateau_counts_probes_without_real_improvement():
    s = PlateauState()
    for v in (0.5, 0.6, 0.603, 0.604, 0.7):  # +0.003 and +0.004 are under 1% of 0.6
        update_plateau(s, v, higher_is_better=True, tolerance=0.01)
    assert s.best == 0.7 and s.since_best == 0 and s.history[-1] == 0.7
    s = PlateauState()
    for v in (0.5, 0.6, 0.603, 0.604):
        update_plateau(s, v, higher_is_better=True, tolerance=0.01)
    assert s.best == 0.6 and s.since_best == 2
    fd = PlateauState()
    for v in (100.0, 80.0, 81.0, 79.5):  # lower is better; 79.5 is not 1% below 80
        update_plateau(fd, v, higher_is_better=False, tolerance=0.01)
    assert fd.best == 80.0 and fd.since_best == 2
    assert PlateauState.from_dict(fd.to_dict()) == fd


def test_plateau_settings_are_checked():
    with pytest.raises(TrainingError, match="--plateau-patience needs --probe-every N"):
        TrainConfig(manifest="m", out="o", plateau_patience=2).validate()
    with pytest.raises(TrainingError, match="--probe-samples must be at least 10, got 3"):
        TrainConfig(manifest="m", out="o", probe_every=5, probe_samples=3).validate()


@pytest.mark.slow
def test_training_stops_on_a_plateau_and_says_so(digits_manifest, tmp_path, one_torch_thread):
    from datakit.training import train
    from datakit.training.rundir import read_metrics
    # A tolerance of 1000% cannot be met: the run stops after the first probe + patience.
    run = train(TrainConfig(manifest=str(digits_manifest.path), out=str(tmp_path / "run"), steps=200,
                            width=8, batch_size=16, n_generate=4, probe_every=5, probe_samples=40,
                            plateau_patience=2, plateau_tolerance=10.0, device="cpu",
                            log_every=100))
    cfg = json.loads((run / "config.json").read_text())
    assert (cfg["steps"], cfg["steps_done"], cfg["plateaued"]) == (200, 15, True)
    rows = read_metrics(run / "metrics.csv")
    assert [r["step"] for r in rows if r["probe_label_fidelity"]] == ["5", "10", "15"]
    assert all(float(r["probe_fd"]) > 0 for r in rows if r["probe_fd"])
    assert (run / "generated.npz").exists()
