"""``datakit ingest``: what every source shares on the command line (help, --split, --on-error, errors)."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from datakit.cli import main
from test_mnist import TEST_N, TRAIN_N, write_mnist
from test_svhn import COUNTS, write_svhn

SOURCES = ["mnist", "svhn", "chars74k", "digits", "fonts"]


def run(*args: str):
    return CliRunner().invoke(main, ["ingest", *args], prog_name="datakit")


def test_ingest_help_lists_every_source():
    result = run("--help")
    assert result.exit_code == 0
    for source in SOURCES:
        assert f"  {source} " in result.output


@pytest.mark.parametrize("source", SOURCES)
def test_each_source_has_help_with_an_example(source):
    result = run(source, "--help")
    assert result.exit_code == 0, result.output
    assert f"Usage: datakit ingest {source} [OPTIONS]" in result.output
    assert "Example:" in result.output and f"datakit ingest {source}" in result.output
    assert "--out" in result.output


@pytest.mark.parametrize("source", ["mnist", "svhn", "chars74k"])
def test_file_sources_share_on_error_and_download(source):
    result = run(source, "--help")
    assert "--on-error [raise|skip]" in result.output and "--download" in result.output


@pytest.mark.parametrize("source,valid", [("mnist", "'train', 'test', 'all'"),
                                          ("svhn", "'train', 'test', 'extra', 'all'")])
def test_bad_split_lists_the_valid_ones(tmp_path, source, valid):
    result = run(source, str(tmp_path), "--split", "valid")
    assert result.exit_code == 2
    assert result.output.endswith(
        f"Error: Invalid value for '--split': 'valid' is not one of {valid}.\n")


def test_mnist_has_no_extra_split(tmp_path):
    write_mnist(tmp_path / "raw")
    result = run("mnist", str(tmp_path / "raw"), "--split", "extra", "-o", str(tmp_path / "out"))
    assert result.exit_code == 2  # --help does not offer it, and click refuses it
    assert result.output.endswith(
        "Error: Invalid value for '--split': 'extra' is not one of 'train', 'test', 'all'.\n")
    from datakit.errors import UnknownName
    from datakit.sources.mnist import ingest_mnist
    with pytest.raises(UnknownName, match=r"^Unknown split 'extra' for MNIST; use one of: train, test, all\.$"):
        ingest_mnist(tmp_path / "raw", split="extra", out=tmp_path / "out")


@pytest.mark.parametrize("source", ["mnist", "svhn", "chars74k"])
def test_bad_on_error_value(tmp_path, source):
    extra = ["--subset", "Fnt"] if source == "chars74k" else []
    result = run(source, str(tmp_path), *extra, "--on-error", "ignore")
    assert result.exit_code == 2
    assert result.output.endswith(
        "Error: Invalid value for '--on-error': 'ignore' is not one of 'raise', 'skip'.\n")


def test_mnist_end_to_end(tmp_path):
    write_mnist(tmp_path / "raw")
    result = run("mnist", str(tmp_path / "raw"), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    n = TRAIN_N + TEST_N
    assert result.output.startswith(f"Wrote {tmp_path / 'out' / 'mnist.parquet'} ({n} images, 28x28x1)\n")
    assert f"  splits: test={TEST_N}, train={TRAIN_N}\n" in result.output
    assert "  domains: handwritten=40\n" in result.output


def test_svhn_end_to_end_with_name(tmp_path):
    write_svhn(tmp_path / "raw")
    result = run("svhn", str(tmp_path / "raw"), "--split", "test", "--name", "house",
                 "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        f"Wrote {tmp_path / 'out' / 'house.parquet'} ({COUNTS['test']} images, 32x32x3)\n")
    assert "  domains: wild=12\n" in result.output


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_on_error_with_a_corrupt_file(tmp_path, on_error):
    write_mnist(tmp_path / "raw")
    bad = tmp_path / "raw" / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:40])
    result = run("mnist", str(tmp_path / "raw"), "-o", str(tmp_path / "out"), "--on-error", on_error)
    if on_error == "raise":
        assert result.exit_code == 1
        assert result.output.startswith(f"Error: {bad} is a truncated or corrupt gzip file (")
        assert result.output.endswith("); re-download it.\n")
        assert not (tmp_path / "out").exists()
    else:
        assert result.exit_code == 0, result.output
        assert f"({TRAIN_N} images, 28x28x1)" in result.output
        assert "  skipped 1 file(s) (listed in mnist.json):\n" in result.output
        assert f"    {bad}: {bad} is a truncated or corrupt gzip file (" in result.output
        sidecar = json.loads((tmp_path / "out" / "mnist.json").read_text())
        assert [s["file"] for s in sidecar["skipped"]] == [str(bad)]


def test_skip_with_nothing_left_is_an_error(tmp_path):
    write_svhn(tmp_path / "raw", splits=("train",))
    (tmp_path / "raw" / "train_32x32.mat").write_bytes(b"garbage")
    result = run("svhn", str(tmp_path / "raw"), "-o", str(tmp_path / "out"), "--on-error", "skip")
    assert result.exit_code == 1
    f = tmp_path / "raw" / "train_32x32.mat"
    assert result.output == (f"Error: No SVHN split could be ingested from {tmp_path / 'raw'}; every "
                             f"file was skipped. {f} is not a MATLAB v5 .mat file (no v5 header).\n")


def test_missing_folder_is_a_clean_error(tmp_path):
    result = run("mnist", str(tmp_path / "nowhere"), "-o", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert result.output == (f"Error: MNIST folder {tmp_path / 'nowhere'} does not exist. Pass the "
                             "folder that holds the IDX files, or use --download.\n")
    assert "Traceback" not in result.output
