"""The hand-run benchmarks still run: a tiny bench/train end to end (its numbers are not
checked here — speed targets live in the benchmark's own output, never in unit tests)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parent.parent / "bench"


@pytest.mark.slow
def test_bench_train_runs_on_a_tiny_setting():
    out = subprocess.run([sys.executable, str(BENCH / "train"), "--width", "8", "--batch-size", "8",
                          "--steps", "2", "--threads", "1"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "share of peak" in out.stdout and "speed-up vs textbook" in out.stdout


@pytest.mark.slow
def test_bench_gpu_quick_checks_pass_and_it_measures_on_this_device():
    out = subprocess.run([sys.executable, str(BENCH / "gpu"), "--quick", "--threads", "1"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "FAIL" not in out.stdout and out.stdout.endswith("12 of 12 checks passed\n")
    # the speed lines and the batch sweep (the --quick set is too small for batch 4096)
    assert "speed-up vs textbook" in out.stdout
    assert "  batch    64: img/s" in out.stdout and "  batch  1024: img/s" in out.stdout
    assert "  batch  4096: skipped (the synthetic set has 2048 images)" in out.stdout
