"""Hostile inputs give one-line errors: label bombs, non-UTF-8 archive names, bad generated labels."""
from __future__ import annotations

import gzip
import tarfile

import numpy as np
import pytest
from test_audit_run import _held_out, _run
from test_chars74k import fnt_files, ingest, write_tgz

from datakit._core.names import printable
from datakit.audit import audit_run
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
