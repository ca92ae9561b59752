"""Hostile inputs give one-line errors: label bombs, non-UTF-8 archive names, bad generated labels."""
from __future__ import annotations

import gzip
import json
import tarfile

import numpy as np
import pytest
from click.testing import CliRunner
from test_audit_run import _held_out, _run
from test_chars74k import fnt_files, ingest, write_tgz

from datakit._core.names import printable
from datakit.audit import audit_run, load_run
from datakit.cli import main
from datakit.errors import FormatError, RunDirError
from datakit.sources.mnist import LABELS_MAGIC, CountMismatch, read_idx


def test_label_count_is_checked_before_inflating(tmp_path):
    """A labels .gz whose header declares other than one label per image is refused after
    reading its 8-byte header, however much it would inflate to."""
    n = 50_000_000  # 50 MB of zeros compress to ~50 kB
    body = LABELS_MAGIC.to_bytes(4, "big") + n.to_bytes(4, "big")
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(body)
        for _ in range(n // (1 << 20)):
            f.write(bytes(1 << 20))
    with pytest.raises(CountMismatch, match="declares 50,000,000 items in its header but 100 were expected"):
        read_idx(path, LABELS_MAGIC, 1, count=100)
    small = tmp_path / "ok.gz"  # control: the right count reads
    small.write_bytes(gzip.compress(LABELS_MAGIC.to_bytes(4, "big") + (3).to_bytes(4, "big") + b"\x01\x02\x03"))
    assert read_idx(small, LABELS_MAGIC, 1, count=3).tolist() == [1, 2, 3]


def _tgz_with_latin1_name(tmp_path):
    files = fnt_files(samples=(1, 2), per_class=2)
    bad = tarfile.TarInfo("English/Fnt/Sample001/caf\udce9.png")  # b"caf\xe9": Latin-1, not UTF-8
    data = next(iter(files.values()))
    bad.size = len(data)
    return write_tgz(tmp_path / "EnglishFnt.tgz", "English/Fnt", files, extra=[(bad, data)])


def test_non_utf8_member_names_are_skipped_with_a_reason(tmp_path):
    arc = _tgz_with_latin1_name(tmp_path)
    m = ingest(arc, tmp_path / "out", on_error="skip")
    assert len(m) == 4
    (item,) = m.meta["skipped"]
    assert item["file"] == "EnglishFnt.tgz:English/Fnt/Sample001/caf\\xe9.png"
    assert "the name is not UTF-8 text" in item["reason"]


def test_non_utf8_member_names_are_a_clear_error(tmp_path):
    arc = _tgz_with_latin1_name(tmp_path)
    with pytest.raises(FormatError, match=r"caf\\xe9.png: the name is not UTF-8 text; rename it"):
        ingest(arc, tmp_path / "out")


def test_terminal_escapes_are_escaped_when_printed():
    assert printable("evil\x1b[2J\x07name") == "evil\\x1b[2J\\x07name"
    assert printable("naïve name") == "naïve name"  # control: printable text is unchanged


def test_labels_shaped_n_by_1_are_refused(digits_manifest, tmp_path):
    images, labels = _held_out(digits_manifest)
    run = _run(tmp_path / "run", digits_manifest, images, labels[:, None])
    with pytest.raises(RunDirError) as e:
        audit_run(run)
    assert str(e.value) == (f"{run / 'generated.npz'} holds labels of shape ({len(labels)}, 1); "
                            "expected one label per image, shape (N,). Write them with labels.reshape(-1).")
    assert not (run / "audit").exists()


def test_nan_labels_are_refused(digits_manifest, tmp_path):
    images, labels = _held_out(digits_manifest)
    labels = labels.astype(float)
    labels[2] = np.nan
    run = _run(tmp_path / "run", digits_manifest, images, labels)
    with pytest.raises(RunDirError, match="holds labels that are NaN, infinite or not whole numbers"):
        audit_run(run)


# -- config.json and generated.npz of a run ------------------------------------------------

@pytest.mark.parametrize("config, message", [
    ({"manifest": 5}, "{cfg} does not name the training manifest: its \"manifest\" is 5, not a "
                      "path to a .parquet file. Pass a run directory written by `datakit train`."),
    ([1, 2], "{cfg} holds a JSON list, not an object of settings; pass a run directory written "
             "by `datakit train`."),
])
def test_a_config_json_of_the_wrong_shape_is_one_line(digits_manifest, tmp_path, config, message):
    run = _run(tmp_path / "run", digits_manifest, *_held_out(digits_manifest))
    (run / "config.json").write_text(json.dumps(config))
    r = CliRunner().invoke(main, ["audit", str(run)])
    assert r.exit_code == 1
    assert r.output == "Error: " + message.format(cfg=run / "config.json") + "\n"


def test_a_config_json_without_manifest_checksum_is_refused(digits_manifest, tmp_path):
    run = _run(tmp_path / "run", digits_manifest, *_held_out(digits_manifest))
    cfg = json.loads((run / "config.json").read_text())
    del cfg["manifest_checksum"]  # else any manifest at that path would be audited as the run's
    (run / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RunDirError) as e:
        load_run(run)
    assert str(e.value) == (f"{run / 'config.json'} records no manifest_checksum, so nothing shows "
                            f"that {digits_manifest.path} is the manifest the run was trained on. "
                            "Audit a run written by `datakit train`, or add the manifest's "
                            "checksum (its sidecar's \"checksum\").")


def test_uint64_labels_are_not_wrapped_to_minus_one(digits_manifest, tmp_path):
    images, labels = _held_out(digits_manifest)
    labels = labels.astype(np.uint64)
    labels[0] = np.iinfo(np.uint64).max  # astype(int64) would make it -1, "unconditional"
    run = _run(tmp_path / "run", digits_manifest, images, labels)
    with pytest.raises(RunDirError) as e:
        load_run(run)
    assert str(e.value) == (f"{run / 'generated.npz'} holds label 18446744073709551615, larger "
                            "than any class index; expected int64 class indices (-1 for "
                            "unconditional).")


def test_minus_one_labels_in_a_conditional_run_are_warned_about(digits_manifest, tmp_path,
                                                                 datakit_warnings):
    images, labels = _held_out(digits_manifest)
    labels = labels.copy()
    labels[:3] = -1
    run = _run(tmp_path / "run", digits_manifest, images, labels, conditional=True)
    load_run(run)
    assert datakit_warnings == [
        f"{run / 'generated.npz'}: 3 of {len(labels):,} images of this conditional run have "
        "label -1 (no class); the per-class checks leave them out."]


def test_generated_npz_is_bounded_by_its_declared_size(digits_manifest, tmp_path, monkeypatch):
    import datakit.audit.inputs as inputs
    images, labels = _held_out(digits_manifest)
    run = _run(tmp_path / "run", digits_manifest, images, labels)
    monkeypatch.setattr(inputs, "MAX_GENERATED_BYTES", 1000)  # stands for 4 GiB
    with pytest.raises(RunDirError) as e:
        load_run(run)
    declared = images.nbytes + labels.nbytes + 2 * 128  # two .npy headers of 128 bytes
    assert str(e.value) == (f"{run / 'generated.npz'} declares {declared:,} bytes of arrays, more "
                            "than the 1,000-byte limit for a run's samples; refusing to load it. "
                            "Write fewer samples (--n-generate).")


# -- options checked before any work ----------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--epochs", "-1"], "--epochs must be a whole number of at least 0 (got -1)."),
    (["--seed", "-1"], "--seed must be a whole number of at least 0 (got -1)."),
])
def test_label_issues_options_are_checked(make_manifest, args, message):
    m = make_manifest({"0": 10, "1": 10})
    r = CliRunner().invoke(main, ["label-issues", str(m.path), *args])
    assert r.exit_code == 1 and r.output == f"Error: {message}\n"


@pytest.mark.parametrize("command", ["label-issues", "audit"])
def test_a_gpu_that_is_not_there_is_one_line(digits_manifest, tmp_path, monkeypatch, command):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    target = digits_manifest.path if command == "label-issues" else \
        _run(tmp_path / "run", digits_manifest, *_held_out(digits_manifest))
    r = CliRunner().invoke(main, [command, str(target), "--device", "cuda"])
    assert r.exit_code == 1
    assert r.output == ("Error: --device cuda was asked for but PyTorch sees no CUDA GPU; use "
                        "--device cpu or --device auto.\n")


@pytest.mark.parametrize("args, message", [
    (["--image-size", "100000"], "--image-size 100000 is larger than the 1024-pixel limit "
                                 "(ingest's largest --size); use a value from 1 to 1024."),
    (["--seed", "-1"], "--seed must be a whole number from 0 to 2**63-1, not -1."),
])
def test_compose_options_are_bounded(make_manifest, tmp_path, args, message):
    m = make_manifest({"0": 4, "1": 4})
    r = CliRunner().invoke(main, ["compose", str(m.path), "-o", str(tmp_path / "c.parquet"), *args])
    assert r.exit_code == 1 and r.output == f"Error: {message}\n"
    assert not (tmp_path / "c.parquet").exists()


# -- stats -------------------------------------------------------------------------------------

def test_text_stats_escape_control_and_bidi_characters_in_class_names(make_manifest):
    m = make_manifest({"evil\x1b[2Jname": 2, "abc\u202edef": 2})
    r = CliRunner().invoke(main, ["stats", str(m.path)])
    assert r.exit_code == 0, r.output
    assert "\x1b" not in r.output and "\u202e" not in r.output
    assert "evil\\x1b[2Jname" in r.output and "abc\\u202edef" in r.output


def test_sample_n_is_bounded_before_any_work(tmp_path):
    pytest.importorskip("torch")
    r = CliRunner().invoke(main, ["sample", str(tmp_path / "run"), "--n", "100000000"])
    assert r.exit_code == 1
    assert r.output == ("Error: --n 100,000,000 is more than the 1,000,000 images one `datakit "
                        "sample` draws (they are held in memory); draw several batches with "
                        "different --seed values.\n")
