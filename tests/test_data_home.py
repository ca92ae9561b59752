"""The data home: where sources find their files when given no path, how it is resolved and
shown, the error when it is empty, --download into it, and the README's two commands run
verbatim on fixtures written in the real layouts."""
from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from fake_runs import make_run
from test_chars74k import name_of, png, write_tgz
from test_download import _serve_as_official, server  # noqa: F401 (a fixture)
from test_mnist import TEST_N, TRAIN_N, write_mnist
from test_svhn import COUNTS, write_svhn

from datakit.cli import main
from datakit.errors import SourceNotFound
from datakit.manifest.read import read_manifest
from datakit.sources.home import get_data_home, source_home
from datakit.sources.registry import data_home_report, ingest

GOOD = "English/Img/GoodImg/Bmp"
README = (Path(__file__).parent.parent / "README.md").read_text()


def run(*args: str):
    return CliRunner().invoke(main, list(args), prog_name="datakit")


def goodimg_files(samples=(1, 2, 3), per_class: int = 3) -> dict[str, bytes]:
    """Natural-scene-like RGB crops of several sizes, as GoodImg's Bmp/SampleNNN/*.png are."""
    return {name_of(s, i + 1): png(18 + 3 * i, 24, mode="RGB", bg=(200, 190, 170),
                                   ink=(30, 20, 10), seed=s * 5 + i)
            for s in samples for i in range(per_class)}


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty data home named by DATAKIT_DATA."""
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("DATAKIT_DATA", str(folder))
    return folder


@pytest.fixture
def full_home(home) -> Path:
    """A data home with every source's files in the original layout and binary formats."""
    write_mnist(home / "mnist")
    write_svhn(home / "svhn", splits=("train", "test"))
    write_tgz(home / "chars74k" / "EnglishImg-GoodImg.tgz", GOOD, goodimg_files())
    return home


# -- resolving it ------------------------------------------------------------------------

def test_explicit_then_environment_then_platform(tmp_path, monkeypatch):
    monkeypatch.setenv("DATAKIT_DATA", str(tmp_path / "env"))
    assert get_data_home(tmp_path / "given") == tmp_path / "given"
    assert get_data_home() == tmp_path / "env"
    assert source_home("mnist") == tmp_path / "env" / "mnist"
    monkeypatch.setenv("DATAKIT_DATA", "")  # empty counts as unset
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(sys, "platform", "linux")
    assert get_data_home() == tmp_path / "xdg" / "datakit"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/dir")  # invalid by the XDG spec: ignored
    assert get_data_home() == tmp_path / "user" / ".local" / "share" / "datakit"
    monkeypatch.setattr(sys, "platform", "darwin")
    assert get_data_home() == tmp_path / "user" / "Library" / "Application Support" / "datakit"
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert get_data_home() == tmp_path / "local" / "datakit"
    assert not (tmp_path / "local").exists()  # resolving creates nothing


def test_help_and_data_home_command_show_it(full_home):
    result = run("--help")
    assert result.exit_code == 0
    assert f"Data home: {full_home} " in " ".join(result.output.split())
    result = run("data-home")
    assert result.exit_code == 0 and result.output == f"{full_home}\n"
    result = run("data-home", "--json")
    assert result.exit_code == 0
    assert json.loads(result.output) == {"data_home": str(full_home), "sources": {
        "mnist": {"path": str(full_home / "mnist"), "present": True},
        "svhn": {"path": str(full_home / "svhn"), "present": True},
        "chars74k": {"path": str(full_home / "chars74k"), "present": True, "subsets": ["GoodImg"]}}}


def test_report_of_an_empty_data_home(home):
    report = data_home_report()
    assert {s: e["present"] for s, e in report["sources"].items()} == {
        "mnist": False, "svhn": False, "chars74k": False}
    (home / "mnist").mkdir()
    write_mnist(home / "mnist")
    (home / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()  # three files of four: not there
    assert not data_home_report()["sources"]["mnist"]["present"]


# -- an empty data home: one clear line --------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["mnist"], "MNIST files not found in the data home: looked in {home}/mnist for "
                "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
                "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]."),
    (["chars74k", "--subset", "GoodImg"],
     "Chars74K GoodImg not found in the data home: looked in {home}/chars74k for the folder "
     "English/Img/GoodImg/Bmp/ or the archives EnglishImg-GoodImg.tgz, EnglishImg.tgz."),
    (["svhn", "--split", "test"],
     "SVHN test file not found in the data home: looked in {home}/svhn for test_32x32.mat."),
    (["svhn"], "SVHN files not found in the data home: looked in {home}/svhn for "
               "train_32x32.mat, test_32x32.mat, extra_32x32.mat."),
])
def test_empty_data_home_says_where_it_looked_and_how_to_fill_it(home, tmp_path, args, message):
    result = run("ingest", *args, "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert result.output == ("Error: " + message.format(home=home) + " Use --download to fetch "
                             "them there, or pass the folder that holds them.\n")
    assert not (tmp_path / "out").exists()


def test_data_home_that_does_not_exist_gives_the_same_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DATAKIT_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(SourceNotFound, match=r"^Chars74K Fnt not found in the data home: looked in "
                                             + re.escape(str(tmp_path / "nowhere" / "chars74k"))):
        ingest("chars74k", subset="Fnt", out=tmp_path / "out")


def test_one_mnist_split_missing_is_named(home, tmp_path):
    write_mnist(home / "mnist")
    (home / "mnist" / "t10k-images-idx3-ubyte.gz").unlink()
    result = run("ingest", "mnist", "--out", str(tmp_path / "out"))
    assert result.output.startswith(f"Error: MNIST files not found in the data home: looked in "
                                    f"{home / 'mnist'} for t10k-images-idx3-ubyte[.gz]. ")
    # Only the train split was asked for: it is there.
    result = run("ingest", "mnist", "--split", "train", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output


# -- a data home with the files: no path needed ------------------------------------------

def test_every_source_ingests_from_the_data_home(full_home, tmp_path):
    out = tmp_path / "out"
    for args, name, n in ((["mnist"], "mnist", TRAIN_N + TEST_N),
                          (["svhn", "--split", "test"], "svhn-test", COUNTS["test"]),
                          (["chars74k", "--subset", "GoodImg", "--workers", "0"],
                           "chars74k-goodimg", 9)):
        result = run("ingest", *args, "--out", str(out))
        assert result.exit_code == 0, result.output
        m = read_manifest(out / f"{name}.parquet")
        assert len(m) == n
        source = args[0]
        assert m.meta["config"]["path"] == str(full_home / source)
    assert read_manifest(out / "chars74k-goodimg.parquet").geometry.channels == 3


def test_library_ingest_without_a_path(full_home, tmp_path):
    m = ingest("chars74k", subset="GoodImg", workers=0, out=tmp_path / "out")
    assert len(m) == 9 and set(m.table["class_name"]) == {"0", "1", "2"}
    assert m.table["source"].iloc[0].startswith("EnglishImg-GoodImg.tgz:")
    # The old positional form still works and gives the same images.
    same = ingest("chars74k", str(full_home / "chars74k"), subset="GoodImg", workers=0,
                  out=tmp_path / "explicit")
    assert list(same.table["sha256"]) == list(m.table["sha256"])


def test_download_without_a_path_fills_the_data_home(server, home, tmp_path, monkeypatch):  # noqa: F811
    served, base, requests = server
    write_mnist(served)
    _serve_as_official(monkeypatch, "mnist", served)
    monkeypatch.setenv("DATAKIT_DOWNLOAD_URL", base)
    result = run("ingest", "mnist", "--download", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (home / "mnist").iterdir()) == sorted(p.name for p in served.iterdir())
    assert len(requests) == 4
    assert len(read_manifest(tmp_path / "out" / "mnist.parquet")) == TRAIN_N + TEST_N
    result = run("ingest", "mnist", "--out", str(tmp_path / "out2"))  # now there: no download
    assert result.exit_code == 0 and len(requests) == 4


# -- studies -----------------------------------------------------------------------------

def test_study_ingest_without_path_reads_the_data_home(full_home, tmp_path):
    from datakit.study.arms import _ingest
    from datakit.study.spec import parse_study
    study = parse_study({"ingest": {"good": {"source": "chars74k", "subset": "GoodImg",
                                             "workers": 0}},
                         "arm": [{"name": "a", "from": ["good"]}]})
    spec = study.ingests["good"]
    assert spec.path is None
    m = _ingest(spec, tmp_path / "manifests")
    assert len(m) == 9 and m.meta["config"]["path"] == str(full_home / "chars74k")


def test_shipped_studies_need_no_datakit_data(monkeypatch):
    from datakit.study.spec import load_study
    monkeypatch.delenv("DATAKIT_DATA", raising=False)
    root = Path(__file__).parent.parent / "audits"
    for path in sorted(root.glob("*.toml")):
        assert "${DATAKIT_DATA}" not in path.read_text(), path
        study = load_study(path)
        assert study.ingests and all(s.path is None for s in study.ingests.values()), path


# -- the README's two commands, verbatim -------------------------------------------------

def _readme_command(start: str) -> list[str]:
    """The README's line that starts with ``start``, split as a shell would (no comment)."""
    lines = [line for line in README.splitlines() if line.startswith(start)]
    assert lines, f"README does not show `{start}`"
    return shlex.split(lines[0], comments=True)


@pytest.mark.slow  # the real audit (judge, CAS, report) of a fake run: ~5 s of CPU
def test_readme_two_commands_run_verbatim(home, tmp_path, monkeypatch, one_torch_thread):
    ingest_cmd = _readme_command("datakit ingest chars74k --subset GoodImg")
    audit_cmd = _readme_command("datakit audit run_dir/")
    assert ingest_cmd == ["datakit", "ingest", "chars74k", "--subset", "GoodImg"]
    assert audit_cmd == ["datakit", "audit", "run_dir/"]
    write_tgz(home / "chars74k" / "EnglishImg-GoodImg.tgz", GOOD,
              goodimg_files(samples=tuple(range(1, 11)), per_class=4))
    monkeypatch.chdir(tmp_path)

    result = run(*ingest_cmd[1:])
    assert result.exit_code == 0, result.output
    assert "Wrote data_manifests/chars74k-goodimg.parquet (40 images, 32x32x3)" in result.output

    # A stand-in for `datakit train ... --out run_dir`: the run-directory contract, untrained.
    manifest = read_manifest("data_manifests/chars74k-goodimg.parquet")
    make_run(Path("run_dir"), manifest, per_class=2)
    result = run(*audit_cmd[1:])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("Report: run_dir/audit/report.html")
    audit = json.loads(Path("run_dir/audit/audit.json").read_text())
    assert audit["run"]["manifest"] == str(manifest.path.resolve())
    assert Path("run_dir/audit/report.html").stat().st_size > 0
