"""SVHN source: tiny ``*_32x32.mat`` files in the real layout (MATLAB v5 via scipy.io.savemat)."""
from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from datakit.errors import FormatError, SourceNotFound, UnknownName
from datakit.manifest.read import read_manifest
from datakit.sources.svhn import ingest_svhn, read_svhn_mat, scan_mat_file

COUNTS = {"train": 24, "test": 12, "extra": 6}


def write_svhn_mat(path: Path, n: int, *, seed: int = 0, compress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Write one SVHN split as the originals are: X 32×32×3×N uint8, y N×1 uint8 in 1..10."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = (np.arange(n) % 10 + 1).astype(np.uint8).reshape(n, 1)  # 1..10, 10 is the digit 0
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"X": x, "y": y}, do_compression=compress)
    return x, y


def write_svhn(folder: Path, splits=("train", "test"), compress: bool = True) -> dict[str, tuple]:
    return {s: write_svhn_mat(folder / f"{s}_32x32.mat", COUNTS[s], seed=i, compress=compress)
            for i, s in enumerate(splits)}


@pytest.mark.parametrize("compress", [True, False])
def test_ingests_layout_and_label_10_is_zero(tmp_path, compress):
    written = write_svhn(tmp_path / "raw", compress=compress)
    m = read_manifest(ingest_svhn(tmp_path / "raw", out=tmp_path / "out").path)
    assert m.name == "svhn" and len(m) == COUNTS["train"] + COUNTS["test"]
    assert m.geometry.shape == (32, 32, 3)
    t = m.table
    assert set(t["domain"]) == {"wild"} and set(t["dataset"]) == {"svhn"}
    assert t["id"].iloc[0] == "svhn/train/000000" and t["source"].iloc[2] == "train_32x32.mat[2]"
    assert set(t["orig_mode"]) == {"RGB"}
    x, y = written["train"]
    # Image i of the store is X[:, :, :, i] of the file.
    np.testing.assert_array_equal(m.images()[5], x[:, :, :, 5])
    np.testing.assert_array_equal(m.images()[COUNTS["train"]], written["test"][0][:, :, :, 0])
    # y = 10 is the digit 0; 1..9 are themselves.
    labels = m.labels()[: COUNTS["train"]]
    np.testing.assert_array_equal(labels, y.ravel() % 10)
    train_rows = t.iloc[: COUNTS["train"]]
    assert train_rows.loc[y.ravel() == 10, "class_name"].unique().tolist() == ["0"]
    assert m.stats["split_counts"] == {"test": COUNTS["test"], "train": COUNTS["train"]}
    assert [s for s in m.meta["config"]["splits"]] == ["train", "test"]


@pytest.mark.parametrize("split", ["train", "test", "extra"])
def test_one_split(tmp_path, split):
    write_svhn(tmp_path / "raw", splits=("train", "test", "extra"))
    m = ingest_svhn(tmp_path / "raw", split=split, out=tmp_path / "out")
    assert m.name == f"svhn-{split}" and len(m) == COUNTS[split]
    assert set(m.table["split"]) == {split} and set(m.table["subset"]) == {split}


def test_all_takes_the_splits_present(tmp_path):
    write_svhn(tmp_path / "raw", splits=("test", "extra"))
    m = ingest_svhn(tmp_path / "raw", out=tmp_path / "out")
    assert m.stats["split_counts"] == {"extra": COUNTS["extra"], "test": COUNTS["test"]}


def test_bad_split(tmp_path):
    with pytest.raises(UnknownName) as e:
        ingest_svhn(tmp_path, split="valid")
    assert str(e.value) == "Unknown split 'valid' for SVHN; use one of: train, test, extra, all."


def test_missing_files(tmp_path):
    (tmp_path / "raw").mkdir()
    with pytest.raises(SourceNotFound) as e:
        ingest_svhn(tmp_path / "raw", out=tmp_path / "out")
    assert str(e.value) == (f"SVHN files not found in {tmp_path / 'raw'} (looked for "
                            "train_32x32.mat, test_32x32.mat, extra_32x32.mat). Pass the folder "
                            "that holds them, or use --download.")
    write_svhn(tmp_path / "raw", splits=("train",))
    with pytest.raises(SourceNotFound, match=r"looked for extra_32x32\.mat\)"):
        ingest_svhn(tmp_path / "raw", split="extra", out=tmp_path / "out")


def test_mat_without_x_or_y(tmp_path):
    f = tmp_path / "raw" / "train_32x32.mat"
    f.parent.mkdir()
    scipy.io.savemat(f, {"images": np.zeros((32, 32, 3, 2), np.uint8), "y": np.ones((2, 1), np.uint8)})
    with pytest.raises(FormatError) as e:
        ingest_svhn(tmp_path / "raw", out=tmp_path / "out")
    assert str(e.value) == (f"{f} has no variable X (it holds: images, y); SVHN files hold X "
                            "(images) and y (labels).")


def test_wrong_shapes_and_counts(tmp_path):
    f = tmp_path / "train_32x32.mat"
    scipy.io.savemat(f, {"X": np.zeros((28, 28, 1, 2), np.uint8), "y": np.ones((2, 1), np.uint8)})
    with pytest.raises(FormatError, match=r"X has shape \(28, 28, 1, 2\), expected 32x32x3xN"):
        read_svhn_mat(f)
    scipy.io.savemat(f, {"X": np.zeros((32, 32, 3, 4), np.uint8), "y": np.ones((3, 1), np.uint8)})
    with pytest.raises(FormatError, match=r"holds 4 images in X but 3 labels in y; the counts must match"):
        read_svhn_mat(f)
    scipy.io.savemat(f, {"X": np.zeros((32, 32, 3, 2)), "y": np.ones((2, 1), np.uint8)})
    with pytest.raises(FormatError, match=r"X is double, expected uint8 pixels"):
        read_svhn_mat(f)
    scipy.io.savemat(f, {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[0], [11]], np.uint8)})
    with pytest.raises(FormatError,
                       match=r"y holds labels from 0 to 11; SVHN labels are the whole numbers 1-10"):
        read_svhn_mat(f)
    scipy.io.savemat(f, {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[1.0], [2.5]])})
    with pytest.raises(FormatError, match=r"y holds labels from 1 to 2\.5; SVHN labels are the whole"):
        read_svhn_mat(f)
    # Labels stored as doubles are fine when they are whole numbers.
    scipy.io.savemat(f, {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[10.0], [3.0]])})
    assert read_svhn_mat(f)[1].tolist() == [0, 3]


def test_not_a_mat_file(tmp_path):
    f = tmp_path / "test_32x32.mat"
    f.write_bytes(b"<html>503 Service Unavailable</html>")
    with pytest.raises(FormatError, match=r"test_32x32\.mat is not a MATLAB v5 \.mat file"):
        read_svhn_mat(f)
    f.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(600))
    with pytest.raises(FormatError, match=r"is a MATLAB v7\.3 \(HDF5\) file"):
        read_svhn_mat(f)


def test_truncated_and_corrupt(tmp_path):
    f = tmp_path / "train_32x32.mat"
    write_svhn_mat(f, 20)
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match=r"train_32x32\.mat is truncated"):
        read_svhn_mat(f)
    broken = bytearray(data)
    broken[len(data) // 2: len(data) // 2 + 64] = bytes(64)
    f.write_bytes(bytes(broken))
    with pytest.raises(FormatError, match=r"train_32x32\.mat is corrupt"):
        read_svhn_mat(f)


def _compressed_mat(element: bytes) -> bytes:
    """A v5 .mat file holding ``element`` (an miMATRIX) as one miCOMPRESSED element."""
    header = b"MATLAB 5.0 MAT-file, written by a datakit test".ljust(116, b" ") + bytes(8)
    body = zlib.compress(element)
    return header + b"\x00\x01IM" \
        + struct.pack("<II", 15, len(body)) + body


def test_decompression_bomb_is_refused(tmp_path):
    # X declares 2 images but its compressed data inflates to 40 MB.
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"X": np.zeros((32, 32, 3, 2), np.uint8)}, do_compression=False)
    element = bytearray(buf.getvalue()[128:])
    element += bytes(40 << 20)
    f = tmp_path / "train_32x32.mat"
    f.write_bytes(_compressed_mat(bytes(element)))
    assert f.stat().st_size < 100_000
    with pytest.raises(FormatError, match=r"variable X inflates to more than the 10,240 bytes"):
        scan_mat_file(f)


def test_absurd_declared_size_is_refused(tmp_path):
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"X": np.zeros((32, 32, 3, 1), np.uint8)}, do_compression=False)
    element = bytearray(buf.getvalue()[128:])
    dims_at = element.index(struct.pack("<iiii", 32, 32, 3, 1))
    element[dims_at + 12: dims_at + 16] = struct.pack("<i", 5_000_000)
    f = tmp_path / "train_32x32.mat"
    f.write_bytes(_compressed_mat(bytes(element)))
    with pytest.raises(FormatError, match=r"X declares 15,360,000,000 elements .* more than any SVHN split"):
        scan_mat_file(f)


def test_skip_ingests_the_rest_and_lists_the_bad_file(tmp_path):
    write_svhn(tmp_path / "raw")
    bad = tmp_path / "raw" / "test_32x32.mat"
    bad.write_bytes(bad.read_bytes()[:300])
    m = ingest_svhn(tmp_path / "raw", out=tmp_path / "out", on_error="skip")
    assert len(m) == COUNTS["train"] and set(m.table["split"]) == {"train"}
    skipped = json.loads(m.sidecar_path.read_text())["skipped"]
    assert [s["file"] for s in skipped] == [str(bad)]
    assert "is truncated" in skipped[0]["reason"]


def test_failed_ingest_leaves_no_manifest(tmp_path):
    write_svhn(tmp_path / "raw")
    bad = tmp_path / "raw" / "test_32x32.mat"
    bad.write_bytes(bad.read_bytes()[:300])
    with pytest.raises(FormatError):
        ingest_svhn(tmp_path / "raw", out=tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    with pytest.raises(FormatError, match=r"No SVHN split could be ingested"):
        ingest_svhn(tmp_path / "raw", split="test", out=tmp_path / "out", on_error="skip")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
