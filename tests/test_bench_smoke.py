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


def test_bench_study_multiplicity_reads_p_values_back_from_intervals(tmp_path):
    # Pages written before study.json stored p-values: the bench reads each one back from the
    # contrast's interval. Planted: the same contrasts with and without stored p-values (two
    # of them clipped to a share's bounds) must give the same table.
    import json
    from datakit.study.contrasts import Measurement, add_q_values, contrast

    def runs(values, se=0.0):
        return [Measurement(s, float(v), se) for s, v in enumerate(values)]
    contrasts = add_q_values([
        contrast("f", "a", "b", "fd", runs([70, 72, 69], 0.5), runs([40, 41, 43], 0.5)),
        contrast("f", "a", "b", "precision", runs([0.40, 0.42, 0.41]), runs([0.43, 0.47, 0.44])),
        contrast("f", "a", "b", "coverage", runs([0.02, 0.3, 0.1]), runs([0.98, 0.99, 0.97])),
        contrast("f", "a", "b", "recall", runs([0.01, 0.0, 0.02]), runs([0.99, 1.0, 0.98]))]
        + [contrast("f", "a", "b", "recall", runs([0.4, 0.5, 0.45]), runs([0.5, 0.4, 0.45]))] * 8)
    assert any(c["ci_high"] == 1 for c in contrasts)  # clipped: a difference of shares stays ≤ 1
    stored = {"contrasts": contrasts}
    bare = {"contrasts": [{k: v for k, v in c.items() if k not in ("p_value", "q_value")}
                          for c in contrasts]}
    (tmp_path / "s.json").write_text(json.dumps(stored))
    (tmp_path / "s_old.json").write_text(json.dumps(bare).replace("s_old", "s"))
    out = subprocess.run([sys.executable, str(BENCH / "study_multiplicity"), str(tmp_path / "s.json"),
                          str(tmp_path / "s_old.json")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    header, new, old = out.stdout.splitlines()
    assert new.split()[1:4] == ["12", "4", "3"] and new.endswith("precision, b vs a (q 0.0957)")
    assert old.split()[1:] == new.split()[1:]
