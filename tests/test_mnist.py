"""MNIST source: tiny IDX files written by the tests, gzipped and not, good and bad."""
from __future__ import annotations

import gzip
import json
import resource
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from datakit.errors import FormatError, ManifestError, SourceNotFound, UnknownName
from datakit.manifest.model import COLUMNS
from datakit.manifest.read import read_manifest
from datakit.sources.mnist import IMAGES_MAGIC, LABELS_MAGIC, ingest_mnist

TRAIN_N, TEST_N = 30, 10


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """An IDX file's bytes: big-endian magic, one uint32 per dimension, then the uint8 data."""
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_file(path: Path, data: bytes, gz: bool) -> Path:
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def write_mnist(folder: Path, *, gz: bool = True, train_n: int = TRAIN_N, test_n: int = TEST_N,
                seed: int = 0) -> dict[str, np.ndarray]:
    """Write the four MNIST IDX files into ``folder``; return the arrays written."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {}
    for prefix, n in (("train", train_n), ("t10k", test_n)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_file(folder / f"{prefix}-images-idx3-ubyte", idx_bytes(images, IMAGES_MAGIC), gz)
        write_file(folder / f"{prefix}-labels-idx1-ubyte", idx_bytes(labels, LABELS_MAGIC), gz)
        arrays[prefix + "_images"], arrays[prefix + "_labels"] = images, labels
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_ingests_both_splits_gzipped_or_not(tmp_path, gz):
    arrays = write_mnist(tmp_path / "raw", gz=gz)
    m = ingest_mnist(tmp_path / "raw", out=tmp_path / "out")
    assert m.path == tmp_path / "out" / "mnist.parquet"
    m = read_manifest(m.path)
    assert len(m) == TRAIN_N + TEST_N
    assert list(m.table.columns[: len(COLUMNS)]) == COLUMNS
    assert m.geometry.shape == (28, 28, 1)
    t = m.table
    assert t["id"].iloc[0] == "mnist/train/00000" and t["id"].iloc[-1] == f"mnist/test/{TEST_N - 1:05d}"
    assert set(t["dataset"]) == {"mnist"} and set(t["domain"]) == {"handwritten"}
    assert (t["split"] == t["subset"]).all()
    assert m.stats["split_counts"] == {"test": TEST_N, "train": TRAIN_N}
    suffix = ".gz" if gz else ""
    assert t["source"].iloc[1] == f"train-images-idx3-ubyte{suffix}[1]"
    expected_pixels = np.concatenate([arrays["train_images"], arrays["t10k_images"]])[..., None]
    np.testing.assert_array_equal(m.images(), expected_pixels)
    expected_labels = np.concatenate([arrays["train_labels"], arrays["t10k_labels"]])
    np.testing.assert_array_equal(m.labels(), expected_labels)
    assert t["class_name"].tolist() == [str(x) for x in expected_labels]
    assert m.vocabulary == [str(d) for d in range(10)]
    assert len(m.meta["inputs"]) == 4 and all(len(i["sha256"]) == 64 for i in m.meta["inputs"])
    assert m.meta["skipped"] == []


@pytest.mark.parametrize("split,n", [("train", TRAIN_N), ("test", TEST_N)])
def test_one_split_has_its_own_default_name(tmp_path, split, n):
    write_mnist(tmp_path / "raw")
    m = ingest_mnist(tmp_path / "raw", split=split, out=tmp_path / "out")
    assert m.name == f"mnist-{split}"
    assert len(m) == n and set(m.table["split"]) == {split}
    assert m.table["id"].iloc[0] == f"mnist/{split}/00000"


def test_dotted_file_names_are_accepted(tmp_path):
    write_mnist(tmp_path / "raw", gz=False)
    for p in (tmp_path / "raw").iterdir():
        p.rename(p.with_name(p.name.replace("-idx", ".idx")))
    assert len(ingest_mnist(tmp_path / "raw", out=tmp_path / "out")) == TRAIN_N + TEST_N


def test_extra_split_is_refused(tmp_path):
    write_mnist(tmp_path / "raw")
    with pytest.raises(UnknownName) as e:
        ingest_mnist(tmp_path / "raw", split="extra", out=tmp_path / "out")
    assert str(e.value) == "Unknown split 'extra' for MNIST; use one of: train, test, all."


def test_missing_file_says_what_was_looked_for(tmp_path):
    write_mnist(tmp_path / "raw")
    (tmp_path / "raw" / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(SourceNotFound) as e:
        ingest_mnist(tmp_path / "raw", out=tmp_path / "out")
    assert str(e.value) == (f"MNIST files not found in {tmp_path / 'raw'} (looked for "
                            "t10k-images-idx3-ubyte[.gz]). Pass the folder that holds them, "
                            "or use --download.")


def test_missing_folder(tmp_path):
    with pytest.raises(SourceNotFound, match=r"MNIST folder .*nowhere does not exist"):
        ingest_mnist(tmp_path / "nowhere", out=tmp_path / "out")


def test_wrong_magic_number(tmp_path):
    write_mnist(tmp_path / "raw")
    labels = gzip.decompress((tmp_path / "raw" / "train-labels-idx1-ubyte.gz").read_bytes())
    # A labels file where an images file should be.
    (tmp_path / "raw" / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(labels))
    with pytest.raises(FormatError, match=r"train-images-idx3-ubyte\.gz has magic number 2049, "
                                          r"expected 2051 \(images\)"):
        ingest_mnist(tmp_path / "raw", out=tmp_path / "out")


def test_mismatched_counts(tmp_path):
    write_mnist(tmp_path / "raw")
    write_file(tmp_path / "raw" / "train-labels-idx1-ubyte",
               idx_bytes(np.zeros(TRAIN_N - 1, np.uint8), LABELS_MAGIC), gz=True)
    with pytest.raises(FormatError) as e:
        ingest_mnist(tmp_path / "raw", out=tmp_path / "out")
    assert str(e.value) == (f"train-images-idx3-ubyte.gz holds {TRAIN_N} images but "
                            f"train-labels-idx1-ubyte.gz holds {TRAIN_N - 1} labels "
                            f"(in {tmp_path / 'raw'}); the counts must match.")


def test_truncated_gzip(tmp_path):
    write_mnist(tmp_path / "raw")
    f = tmp_path / "raw" / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(FormatError, match=r"train-images-idx3-ubyte\.gz is a truncated or "
                                          r"corrupt gzip file"):
        ingest_mnist(tmp_path / "raw", out=tmp_path / "out")


def test_corrupt_gzip(tmp_path):
    write_mnist(tmp_path / "raw")
    f = tmp_path / "raw" / "t10k-images-idx3-ubyte.gz"
    data = bytearray(f.read_bytes())
    data[-8:-4] = bytes(4 - i for i in range(4))  # break the CRC-32 in the gzip trailer
    f.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=r"t10k-images-idx3-ubyte\.gz is a truncated or corrupt gzip"):
        ingest_mnist(tmp_path / "raw", out=tmp_path / "out")


def test_not_gzip_despite_the_name(tmp_path):
    write_mnist(tmp_path / "raw")
    (tmp_path / "raw" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"<html>Not found</html>")
    with pytest.raises(FormatError, match=r"t10k-labels-idx1-ubyte\.gz is named \.gz but is not gzip"):
        ingest_mnist(tmp_path / "raw", out=tmp_path / "out")


def test_truncated_plain_file(tmp_path):
    write_mnist(tmp_path / "raw", gz=False)
    f = tmp_path / "raw" / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(FormatError, match=r"train-images-idx3-ubyte is truncated: its header "
                                          rf"declares {TRAIN_N * 784:,} bytes"):
        ingest_mnist(tmp_path / "raw", out=tmp_path / "out")


def test_trailing_data_is_refused(tmp_path):
    write_mnist(tmp_path / "raw", gz=False)
    f = tmp_path / "raw" / "t10k-labels-idx1-ubyte"
    f.write_bytes(f.read_bytes() + b"\x00")
    with pytest.raises(FormatError, match="holds more data than its header declares"):
        ingest_mnist(tmp_path / "raw", out=tmp_path / "out")


def test_absurd_header_is_refused_before_allocating(tmp_path):
    write_mnist(tmp_path / "raw")
    header = IMAGES_MAGIC.to_bytes(4, "big") + b"".join(
        d.to_bytes(4, "big") for d in (2_000_000, 28, 28))  # 1.5 GB declared
    (tmp_path / "raw" / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header))
    with pytest.raises(FormatError, match=r"declares 1,568,000,000 bytes of data .* the header is corrupt"):
        ingest_mnist(tmp_path / "raw", out=tmp_path / "out")


def test_gzip_bomb_stops_at_the_declared_size(tmp_path):
    write_mnist(tmp_path / "raw")
    # 10 images declared, 200 MB of zeros behind them: about 200 KB compressed.
    bomb = idx_bytes(np.zeros((10, 28, 28), np.uint8), IMAGES_MAGIC)
    compressor = gzip.GzipFile(tmp_path / "raw" / "train-images-idx3-ubyte.gz", "wb")
    compressor.write(bomb)
    zeros = bytes(1 << 20)
    for _ in range(200):
        compressor.write(zeros)
    compressor.close()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(FormatError, match="holds more data than its header declares"):
        ingest_mnist(tmp_path / "raw", out=tmp_path / "out")
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 100 * 1024  # nowhere near the 200 MB the stream inflates to


def test_wrong_image_size(tmp_path):
    write_mnist(tmp_path / "raw", gz=False)
    write_file(tmp_path / "raw" / "train-images-idx3-ubyte",
               idx_bytes(np.zeros((TRAIN_N, 32, 32), np.uint8), IMAGES_MAGIC), gz=False)
    with pytest.raises(FormatError, match=r"holds 32x32 images; MNIST images are 28x28"):
        ingest_mnist(tmp_path / "raw", out=tmp_path / "out")


def test_label_out_of_range(tmp_path):
    write_mnist(tmp_path / "raw", gz=False)
    write_file(tmp_path / "raw" / "t10k-labels-idx1-ubyte",
               idx_bytes(np.full(TEST_N, 12, np.uint8), LABELS_MAGIC), gz=False)
    with pytest.raises(FormatError, match=r"t10k-labels-idx1-ubyte holds label 12; MNIST labels are 0-9"):
        ingest_mnist(tmp_path / "raw", out=tmp_path / "out")


def test_skip_ingests_the_good_split_and_lists_the_bad_file(tmp_path):
    write_mnist(tmp_path / "raw")
    bad = tmp_path / "raw" / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:50])
    m = ingest_mnist(tmp_path / "raw", out=tmp_path / "out", on_error="skip")
    assert len(m) == TRAIN_N and set(m.table["split"]) == {"train"}
    sidecar = json.loads(m.sidecar_path.read_text())
    assert [s["file"] for s in sidecar["skipped"]] == [str(bad)]
    assert "truncated or corrupt gzip" in sidecar["skipped"][0]["reason"]
    assert [Path(i["path"]).name for i in sidecar["inputs"]] == [
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]


def test_skip_with_nothing_left_is_an_error(tmp_path):
    write_mnist(tmp_path / "raw")
    for prefix in ("train", "t10k"):
        (tmp_path / "raw" / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(FormatError, match=r"No MNIST split could be ingested from .*every file "
                                          r"was skipped"):
        ingest_mnist(tmp_path / "raw", out=tmp_path / "out", on_error="skip")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_bad_on_error_value(tmp_path):
    with pytest.raises(UnknownName, match=r"Unknown --on-error value 'ignore'; use one of: raise, skip"):
        ingest_mnist(tmp_path, on_error="ignore")


def test_failed_ingest_leaves_no_manifest(tmp_path):
    write_mnist(tmp_path / "raw")
    bad = tmp_path / "raw" / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:-3])
    with pytest.raises(FormatError):
        ingest_mnist(tmp_path / "raw", out=tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_write_failure_keeps_the_previous_manifest(tmp_path, monkeypatch):
    write_mnist(tmp_path / "raw")
    first = ingest_mnist(tmp_path / "raw", split="train", name="m", out=tmp_path / "out")
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}

    def disk_full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", disk_full)
    with pytest.raises(ManifestError, match=r"Cannot write manifest .*m\.parquet \(No space left on device\)"):
        ingest_mnist(tmp_path / "raw", split="all", name="m", out=tmp_path / "out")
    after = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    assert sorted(after) == sorted(before)  # no temporary files left behind
    assert after == before  # the failed write touched none of the old manifest's files
    assert len(read_manifest(first.path)) == TRAIN_N


def test_a_header_whose_dimensions_overflow_64_bits_is_refused(tmp_path):
    # 8 × 603,979,776 × 1,912,602,624 wraps to 0 in int64 arithmetic: the header is corrupt
    from datakit.sources.mnist import IMAGES_MAGIC, read_idx
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x08$\x00\x00\x00r\x00\x00\x00")
    with pytest.raises(FormatError, match=r"declares 9,241,386,435,364,257,792 bytes of data "
                                          r"\(dimensions \(8, 603979776, 1912602624\)\), more than"):
        read_idx(path, IMAGES_MAGIC, 3)
