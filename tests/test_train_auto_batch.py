"""Batch and learning rates left at auto: chosen by the device, recorded, kept on resume."""
from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner

from datakit.cli import main
from datakit.training import TrainConfig, train
from datakit.training import accel as accel_
from datakit.training.accel import resolve_batch

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = dict(model="acgan", steps=2, width=2, z_dim=4, log_every=1, sample_every=2,
             checkpoint_every=2, n_generate=1)


def _config(run):
    return json.loads((run / "config.json").read_text())


def _optimizer_rates(run):
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    return ckpt["opt_g"]["param_groups"][0]["lr"], ckpt["opt_d"]["param_groups"][0]["lr"]


def test_the_defaults_are_auto():
    cfg = TrainConfig(manifest="m.parquet", out="r")
    assert (cfg.batch_size, cfg.lr_g, cfg.lr_d) == (0, 0.0, 0.0)
    cfg.validate()


def test_auto_is_batch_64_and_rates_1e3_on_the_cpu_and_config_json_records_them(make_manifest,
                                                                               tmp_path):
    m = make_manifest({"0": 4, "1": 4}, size=28)
    run = train(TrainConfig(manifest=str(m.path), out=str(tmp_path / "r"), device="cpu", **SMALL))
    cfg = _config(run)
    assert (cfg["batch_size"], cfg["lr_g"], cfg["lr_d"]) == (64, 1e-3, 1e-3)
    assert _optimizer_rates(run) == (1e-3, 1e-3)
    assert cfg["accel"]["auto"] == {
        "batch_size": "batch 64: auto on cpu",
        "lr_g": "lr_g 0.001: auto, 0.001 x sqrt(64/64) (batch auto on cpu)",
        "lr_d": "lr_d 0.001: auto, 0.001 x sqrt(64/64) (batch auto on cpu)"}


def test_on_cuda_auto_is_batch_256_and_rates_2e3():
    got = resolve_batch(0, 0.0, 0.0, "cuda")
    assert (got.batch_size, got.lr_g, got.lr_d) == (256, 2e-3, 2e-3)
    assert got.auto["batch_size"] == "batch 256: auto on cuda"
    assert got.auto["lr_g"] == "lr_g 0.002: auto, 0.001 x sqrt(256/64) (batch auto on cuda)"


def test_the_run_uses_the_batch_its_device_type_chooses(make_manifest, tmp_path, monkeypatch):
    # No GPU needed: give the CPU a table entry, as CUDA has, and the run follows it.
    monkeypatch.setitem(accel_.AUTO_BATCH, "cpu", 16)
    m = make_manifest({"0": 4, "1": 4}, size=28)
    run = train(TrainConfig(manifest=str(m.path), out=str(tmp_path / "r"), device="cpu", **SMALL))
    cfg = _config(run)
    # below batch 64 the rate stays at 1e-3 (nothing measured there; the demo trains at 16)
    assert (cfg["batch_size"], cfg["lr_g"], cfg["lr_d"]) == (16, 1e-3, 1e-3)
    assert _optimizer_rates(run) == (1e-3, 1e-3)
    monkeypatch.setitem(accel_.AUTO_BATCH, "cpu", 128)
    run = train(TrainConfig(manifest=str(m.path), out=str(tmp_path / "r128"), device="cpu", **SMALL))
    assert _optimizer_rates(run) == (1e-3 * math.sqrt(2), 1e-3 * math.sqrt(2))


def test_an_explicit_rate_is_kept_and_an_explicit_batch_scales_the_auto_rate(make_manifest,
                                                                             tmp_path):
    got = resolve_batch(0, 3e-4, 0.0, "cuda")
    assert (got.batch_size, got.lr_g, got.lr_d) == (256, 3e-4, 2e-3)
    assert set(got.auto) == {"batch_size", "lr_d"}
    got = resolve_batch(128, 0.0, 0.0, "cpu")
    assert (got.batch_size, got.lr_g, got.lr_d) == (128, 1e-3 * math.sqrt(2), 1e-3 * math.sqrt(2))
    assert got.auto["lr_d"] == f"lr_d {1e-3 * math.sqrt(2):g}: auto, 0.001 x sqrt(128/64)"
    # The same through a run: what config.json records is what the optimisers use.
    m = make_manifest({"0": 4, "1": 4}, size=28)
    run = train(TrainConfig(manifest=str(m.path), out=str(tmp_path / "r"), device="cpu",
                            **dict(SMALL, batch_size=128, lr_g=3e-4)))
    cfg = _config(run)
    assert (cfg["batch_size"], cfg["lr_g"], cfg["lr_d"]) == (128, 3e-4, 1e-3 * math.sqrt(2))
    assert _optimizer_rates(run) == (3e-4, 1e-3 * math.sqrt(2))
    assert set(cfg["accel"]["auto"]) == {"lr_d"}


def test_epochs_count_steps_with_the_resolved_batch(make_manifest, tmp_path):
    m = make_manifest({"0": 10, "1": 10}, size=28)
    opts = dict(SMALL, steps=None, epochs=8)
    run = train(TrainConfig(manifest=str(m.path), out=str(tmp_path / "r"), device="cpu", **opts))
    assert _config(run)["steps"] == 3  # ceil(8 × 20 / 64)
    with pytest.raises(ValueError, match="needs a resolved batch_size"):
        TrainConfig(manifest="m", out="r", epochs=1.0).total_steps(20)


def test_an_auto_run_resumes_on_the_same_device_unchanged(make_manifest, tmp_path, monkeypatch):
    m = make_manifest({"0": 4, "1": 4}, size=28)
    run = train(TrainConfig(manifest=str(m.path), out=str(tmp_path / "r"), device="cpu", **SMALL))
    said = []
    monkeypatch.setattr(accel_, "log", said.append)
    train(TrainConfig(manifest=str(m.path), out=str(run), device="cpu", resume=True,
                      **dict(SMALL, steps=4)))
    cfg = _config(run)
    assert cfg["steps_done"] == 4 and (cfg["batch_size"], cfg["lr_g"]) == (64, 1e-3)
    assert cfg["accel"]["auto"]["batch_size"] == "batch 64: auto on cpu; kept on resume"
    assert said == []  # nothing differs, nothing to say


def test_a_run_resumed_where_auto_differs_keeps_its_recorded_batch_and_rates(make_manifest,
                                                                            tmp_path, monkeypatch):
    # Started where auto means 256 (as on CUDA), resumed where it means 64 (the CPU).
    m = make_manifest({"0": 4, "1": 4}, size=28)
    with monkeypatch.context() as gpu_like:
        gpu_like.setitem(accel_.AUTO_BATCH, "cpu", 256)
        run = train(TrainConfig(manifest=str(m.path), out=str(tmp_path / "r"), device="cpu",
                                **SMALL))
    assert _config(run)["batch_size"] == 256
    said = []
    monkeypatch.setattr(accel_, "log", said.append)
    train(TrainConfig(manifest=str(m.path), out=str(run), device="cpu", resume=True,
                      **dict(SMALL, steps=4)))
    cfg = _config(run)
    assert cfg["steps_done"] == 4
    assert (cfg["batch_size"], cfg["lr_g"], cfg["lr_d"]) == (256, 2e-3, 2e-3)
    assert _optimizer_rates(run) == (2e-3, 2e-3)
    assert cfg["accel"]["auto"]["batch_size"] == "batch 256: auto on cpu; kept on resume"
    assert said == ["Resuming with the run's recorded batch 256 (auto on cpu would choose 64), "
                    "lr_g 0.002 (auto on cpu would choose 0.001), lr_d 0.002 (auto on cpu would "
                    "choose 0.001): a run keeps its batch and learning rates; pass --batch-size, "
                    "--lr-g, --lr-d to change them."]


def test_a_run_made_before_auto_resumes_with_its_recorded_numbers():
    # An older config.json records the numbers but no accel.auto.
    got = resolve_batch(0, 0.0, 0.0, "cuda", recorded={"batch_size": 64, "lr_g": 1e-3,
                                                       "lr_d": 1e-3, "accel": {}})
    assert (got.batch_size, got.lr_g, got.lr_d) == (64, 1e-3, 1e-3)
    assert got.auto["batch_size"] == ("batch 64: as the run's config.json recorded it; "
                                      "kept on resume")
    # A hand-edited config.json without usable numbers: resolved as for a new run.
    got = resolve_batch(0, 0.0, 0.0, "cuda", recorded={"batch_size": "64", "lr_g": None,
                                                       "lr_d": True})
    assert (got.batch_size, got.lr_g, got.lr_d) == (256, 2e-3, 2e-3)


def test_negative_batch_and_rates_are_refused_and_help_says_auto(make_manifest, tmp_path):
    m = make_manifest({"0": 4, "1": 4}, size=28)
    runner = CliRunner()
    res = runner.invoke(main, ["train", str(m.path), "--out", str(tmp_path / "o"),
                               "--batch-size", "-1"])
    assert res.exit_code == 1
    assert res.output == "Error: --batch-size must be 0 (auto) or more, got -1.\n"
    res = runner.invoke(main, ["train", str(m.path), "--out", str(tmp_path / "o"),
                               "--lr-g", "-0.001"])
    assert res.output == "Error: --lr-g must be 0 (auto) or positive, got -0.001.\n"
    assert not (tmp_path / "o").exists()
    text = " ".join(runner.invoke(main, ["train", "--help"]).output.split())
    assert "[default: auto — 64 on CPU, 256 on CUDA; 0 asks for auto]" in text
    assert ("[default: auto — 1e-3 × √(batch/64), never under 1e-3: 1e-3 at batch 64 on CPU, "
            "2e-3 at 256 on CUDA") in text
