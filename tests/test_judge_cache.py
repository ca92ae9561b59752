"""The judge cache key: the judge's settings and the kind of device that trained it."""
from __future__ import annotations

import torch

from datakit.judge.network import JudgeConfig


def test_judges_trained_on_a_gpu_and_on_the_cpu_are_cached_apart(monkeypatch):
    # Another device runs other kernels (cuDNN, its own summation order): another judge.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cpu = JudgeConfig(device="cpu").cache_key()
    assert JudgeConfig(device="cuda").cache_key() != cpu
    assert JudgeConfig(device="cuda:0").cache_key() == JudgeConfig(device="cuda:1").cache_key()
    assert JudgeConfig(device="auto").cache_key() == JudgeConfig(device="cuda").cache_key()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert JudgeConfig(device="auto").cache_key() == cpu
    # what is not about the judge does not change it; what is, does
    assert JudgeConfig(device="cpu", min_accuracy=0.5).cache_key() == cpu
    assert JudgeConfig(device="cpu", width=8).cache_key() != cpu
