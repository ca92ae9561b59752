"""Long work says how far it is: a bar on a terminal, a log line every N seconds elsewhere."""
from __future__ import annotations

import io
import logging
import sys

from conftest import progress_lines

from datakit._core import progress as progress_module
from datakit._core.progress import progress


def test_off_a_terminal_a_line_every_ten_seconds_and_one_at_the_end(off_terminal, caplog):
    bar = progress(total=500, desc="train acgan", unit="step")
    for _ in range(10):
        off_terminal.advance(4)  # 50 steps take 4 s
        bar.update(50)
    bar.close()
    assert progress_lines(caplog, "train acgan") == [
        "train acgan: 150/500 (30%), 12.5 step/s, 0:12 elapsed, ETA 0:28",
        "train acgan: 300/500 (60%), 12.5 step/s, 0:24 elapsed, ETA 0:16",
        "train acgan: 450/500 (90%), 12.5 step/s, 0:36 elapsed, ETA 0:04",
        "train acgan: 500/500 done in 0:40, 12.5 step/s",
    ]


def test_slow_items_read_as_seconds_each_and_readings_follow_the_count(off_terminal, caplog):
    bar = progress(range(4), desc="study runs", unit="run")
    for i in bar:
        off_terminal.advance(90)
        bar.set_postfix(arm=f"a{i}")
    assert progress_lines(caplog, "study runs") == [
        "study runs: 1/4 (25%), 90.0 s/run, 1:30 elapsed, ETA 4:30, arm=a0",
        "study runs: 2/4 (50%), 90.0 s/run, 3:00 elapsed, ETA 3:00, arm=a1",
        "study runs: 3/4 (75%), 90.0 s/run, 4:30 elapsed, ETA 1:30, arm=a2",
        "study runs: 4/4 (100%), 90.0 s/run, 6:00 elapsed, ETA 0:00, arm=a3",
        "study runs: 4/4 done in 6:00, 90.0 s/run, arm=a3",
    ]


def test_an_unknown_total_and_bytes(off_terminal, caplog):
    with progress(desc="decoding", unit="img") as bar:
        off_terminal.advance(12)
        bar.update(1200)
    with progress(total=10 * 2**20, desc="download x.tgz", unit="B", unit_scale=True) as bar:
        off_terminal.advance(10)
        bar.update(5 * 2**20)
    assert progress_lines(caplog, "decoding") == ["decoding: 1,200, 100.0 img/s, 0:12 elapsed",
                                                  "decoding: 1,200 done in 0:12, 100.0 img/s"]
    assert progress_lines(caplog, "download x.tgz")[0] == (
        "download x.tgz: 5.00MB/10.0MB (50%), 512kB/s, 0:10 elapsed, ETA 0:10")


def test_a_stage_shorter_than_the_interval_logs_nothing(off_terminal, caplog):
    for _ in progress(range(5), desc="quick", unit="it"):
        off_terminal.advance(1.5)
    assert progress_lines(caplog, "quick") == []


def test_the_interval_is_set_by_an_environment_variable(off_terminal, caplog, monkeypatch):
    monkeypatch.setenv("DATAKIT_PROGRESS_EVERY", "60")
    for _ in progress(range(10), desc="audit checks", unit="check"):
        off_terminal.advance(20)
    assert [line.split(",")[0] for line in progress_lines(caplog, "audit checks")] == [
        "audit checks: 3/10 (30%)", "audit checks: 6/10 (60%)", "audit checks: 9/10 (90%)",
        "audit checks: 10/10 done in 3:20"]


def test_a_bad_interval_is_said_once_and_the_default_used(off_terminal, caplog, monkeypatch):
    monkeypatch.setattr(progress_module, "_warned", set())
    monkeypatch.setenv("DATAKIT_PROGRESS_EVERY", "10s")
    for _ in range(2):
        for _ in progress(range(3), desc="stage", unit="it"):
            off_terminal.advance(5)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["DATAKIT_PROGRESS_EVERY='10s' is not a number of seconds above 0; logging "
                        "progress every 10 s (set it to e.g. 30, or unset it)."]
    assert len(progress_lines(caplog, "stage")) == 4  # 2 stages: one line at 10 s, one at the end


def test_datakit_progress_0_silences_the_lines(off_terminal, caplog, monkeypatch):
    monkeypatch.setenv("DATAKIT_PROGRESS", "0")
    for _ in progress(range(5), desc="train dcgan", unit="step"):
        off_terminal.advance(60)
    assert caplog.records == []


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_a_bar_and_no_lines(off_terminal, caplog, monkeypatch):
    monkeypatch.setattr(sys, "stderr", _Terminal())
    for _ in progress(range(5), desc="train dcgan", unit="step"):
        off_terminal.advance(60)
    assert caplog.records == []
    assert sys.stderr.getvalue().startswith("\rtrain dcgan:   0%|")  # tqdm's bar
