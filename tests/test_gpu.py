"""The trainer and the audit on a real GPU: what no CPU emulation can show.

These run on CUDA when PyTorch sees a GPU and are skipped otherwise. ``bench/device_session``
runs them first thing in a session that has a GPU (with ``bench/gpu`` and ``bench/train``).
``DATAKIT_GPU_TESTS_DEVICE=cpu`` runs them on the CPU instead (with ``--precision bf16``,
the code path CUDA takes), which checks the tests themselves, not the GPU:

    DATAKIT_GPU_TESTS_DEVICE=cpu python -m pytest -m gpu tests/test_gpu.py

What they cover that tests/test_train_cuda_path.py (the CUDA code path emulated on the CPU)
cannot: cuDNN and CUDA's own kernels, bf16 autocast as CUDA applies it, fused Adam's CUDA
kernel, torch.compile with CUDA graphs, the device's auto batch and rates, a checkpoint
written on the GPU resumed on the CPU, and the audit's judge trained on the GPU.
"""
from __future__ import annotations

import json
import math
import os
import shutil

import numpy as np
import pytest
import torch

from datakit.training import TrainConfig, train
from datakit.training.rundir import read_metrics

#: Set to "cpu" to run these tests on the CPU (a check of the tests, not of a GPU).
DEVICE_ENV = "DATAKIT_GPU_TESTS_DEVICE"

pytestmark = pytest.mark.gpu


@pytest.fixture
def device():
    """The device the tests run on: CUDA when present, the CPU when asked for, else skip."""
    forced = os.environ.get(DEVICE_ENV)
    if forced:
        return forced
    if torch.cuda.is_available():
        return "cuda"
    pytest.skip(f"no CUDA GPU here (set {DEVICE_ENV}=cpu to run these tests on the CPU)")


def _config(m, out, model, device, **extra):
    """A short run at the device's own defaults (batch, rates, precision, compile)."""
    precision = "auto" if device == "cuda" else "bf16"  # the CPU dry run takes CUDA's code path
    settings = dict(steps=20, width=8, z_dim=16, log_every=5, sample_every=10,
                    checkpoint_every=10, n_generate=20)
    return TrainConfig(manifest=str(m.path), out=str(out), model=model, device=device,
                       precision=precision, **{**settings, **extra})


def _losses_finite(run) -> bool:
    rows = read_metrics(run / "metrics.csv")
    return all(math.isfinite(float(r[k])) for r in rows for k in ("loss_d", "loss_g"))


@pytest.mark.parametrize("model,extra", [("dcgan", {}),
                                         ("acgan", {"augment": "diffaugment", "ema": True}),
                                         ("cgan-proj", {"augment": "diffaugment", "ema": True})])
def test_each_model_trains_at_the_devices_defaults(make_manifest, tmp_path, device, model, extra):
    m = make_manifest({"0": 40, "1": 40, "2": 40}, size=32)
    benchmark_before = torch.backends.cudnn.benchmark
    run = train(_config(m, tmp_path / "run", model, device, **extra))
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["steps_done"] == 20 and cfg["model"] == model
    assert [int(r["step"]) for r in read_metrics(run / "metrics.csv")] == [5, 10, 15, 20]
    assert (run / "samples" / "step_000020.png").exists() and (run / "checkpoints" / "last.pt").exists()
    acc = cfg["accel"]
    assert acc["device_type"] == device and acc["precision"] == "bf16"
    assert acc["fused_adam"] is True and _losses_finite(run)
    # the device chooses the batch and the rates: 256 at 2e-3 on CUDA, 64 at 1e-3 elsewhere
    assert (cfg["batch_size"], cfg["lr_g"], cfg["lr_d"]) == (
        (256, 2e-3, 2e-3) if device == "cuda" else (64, 1e-3, 1e-3))
    assert acc["cudnn_benchmark"] is (device == "cuda")
    assert torch.backends.cudnn.benchmark == benchmark_before  # restored for later work
    images = np.load(run / "generated.npz")["images"]
    per_class = 3 if cfg["conditional"] else 1  # n_generate is per class for a conditional model
    assert images.dtype == np.uint8 and images.shape == (20 * per_class, 32, 32, 1)
    assert images.std() > 0  # not a constant image


def test_a_gpu_checkpoint_resumes_on_the_gpu_and_on_the_cpu(make_manifest, tmp_path, device):
    m = make_manifest({"0": 40, "1": 40}, size=32)
    first = train(_config(m, tmp_path / "run", "acgan", device, steps=10))
    laptop = tmp_path / "laptop"
    shutil.copytree(first, laptop)
    here = train(_config(m, first, "acgan", device, steps=20, resume=True))
    there = train(_config(m, laptop, "acgan", "cpu", steps=20, resume=True))
    for run, kind in ((here, device), (there, "cpu")):
        cfg = json.loads((run / "config.json").read_text())
        assert cfg["steps_done"] == 20 and cfg["accel"]["device_type"] == kind
        assert _losses_finite(run)
        # the run keeps the batch and rates it started with, also on the other device
        assert cfg["batch_size"] == (256 if device == "cuda" else 64)
    ckpt = torch.load(there / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert ckpt["step"] == 20


def test_cuda_graphs_train_the_small_models(make_manifest, tmp_path, device):
    if device != "cuda":
        pytest.skip("CUDA graphs need a GPU (the CPU has no reduce-overhead mode to test)")
    m = make_manifest({"0": 40, "1": 40}, size=32)
    run = train(_config(m, tmp_path / "run", "acgan", device, steps=40,
                        compile="reduce-overhead"))
    acc = json.loads((run / "config.json").read_text())["accel"]
    assert acc["compile"] == "reduce-overhead" and acc["compiled"] is True, acc
    assert _losses_finite(run)


def test_the_audit_trains_its_judge_on_the_device(make_manifest, tmp_path, device):
    from datakit.audit.config import AuditConfig
    from datakit.audit.run import audit_run

    m = make_manifest({"0": 60, "1": 60}, size=32, split="train")
    run = train(_config(m, tmp_path / "run", "acgan", device, n_generate=100))
    audit = audit_run(run, AuditConfig(device=device, bootstrap=10, kid_subsets=5,
                                       kid_subset_size=20, min_density_samples=0,
                                       use_cache=False))
    assert (run / "audit" / "audit.json").exists()
    assert math.isfinite(audit["summary"]["fd"]["value"])
    assert len(audit["per_class"]) == 2
