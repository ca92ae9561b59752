"""Packaging: curation without torch, the torch-needing commands name their extra, the
CLI's --json / --help / logging conventions, and the files a release needs."""
from __future__ import annotations

import configparser
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from datakit.cli import main

ROOT = Path(__file__).parent.parent

BLOCK_TORCH = """
import importlib.abc, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoTorch())
"""


def _run_without_torch(code: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + code], capture_output=True,
                          text=True, cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                                                        "DATAKIT_PROGRESS": "0"})


def test_curation_runs_without_torch(tmp_path):
    code = """
import datakit.cli, datakit.manifest.stats, datakit.composition, datakit.manifest.export, datakit.label_issues
import datakit.sources.mnist, datakit.sources.svhn, datakit.sources.chars74k, datakit.sources.folder
import datakit.report.dataset
from datakit.sources.digits import ingest_digits
from datakit.composition import compose
from datakit.manifest.export import export
m = ingest_digits(size=8, out='m')
c = compose([m.path], 'm/c.parquet', holdout=0.2, classes='0,1')
export(c, 'tree', 'imagefolder')
assert 'torch' not in sys.modules
print('ok')
"""
    out = _run_without_torch(code, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_cli_ingest_stats_and_compose_with_resize_run_without_torch(tmp_path):
    code = """
import json
from datakit.cli import main
def run(*args):
    try:
        main(list(args), prog_name="datakit")
    except SystemExit as e:
        assert e.code == 0, (args, e.code)
run('-q', 'ingest', 'digits', '--size', '8', '--out', 'm')
run('-q', 'stats', 'm/digits.parquet', '--json')
run('-q', 'compose', 'm/digits.parquet', '-o', 'c/c.parquet', '--image-size', '20', '--channels', '3',
    '--holdout', '0.2', '--dedupe', 'near')
run('-q', 'stats', 'c/c.parquet', '--html', 'c/report.html')
from datakit.manifest import read_manifest
m = read_manifest('c/c.parquet')
assert m.geometry.shape == (20, 20, 3), m.geometry
assert 'torch' not in sys.modules
print('ok')
"""
    out = _run_without_torch(code, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "ok"
    assert (tmp_path / "c" / "report.html").stat().st_size > 1000


@pytest.mark.parametrize("args", [["train", "m.parquet", "--out", "r"], ["sample", "r", "--n", "2"],
                                  ["audit", "r"], ["study", "s.toml"], ["demo"],
                                  ["label-issues", "m.parquet"]])
def test_torch_commands_name_the_extra(args, tmp_path):
    code = f"""
from datakit.cli import main
main({args!r}, prog_name="datakit")
"""
    out = _run_without_torch(code, tmp_path)
    assert out.returncode == 1
    name = args[0]
    assert out.stderr.strip().splitlines()[-1] == (
        f"Error: datakit {name} needs PyTorch: pip install 'datakit[train]'")


def test_python_names_that_need_torch_name_the_extra_and_the_others_work(tmp_path):
    code = """
import datakit
datakit.ingest('digits', size=8, out='m')
result = datakit.verify_manifest('m/digits.parquet')
assert result.ok, result
assert len(datakit.manifest_stats(datakit.read_manifest('m/digits.parquet'))['class_counts']) == 10
try:
    datakit.sample('r', 2)
except datakit.MissingDependency as e:
    print(e)
"""
    out = _run_without_torch(code, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "datakit.sample needs PyTorch: pip install 'datakit[train]'"


def test_setup_declares_extras_license_and_python():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    requires = cfg["options"]["install_requires"]
    assert "torch" not in requires and 'tomli>=1.1; python_version<"3.11"' in requires
    extras = cfg["options.extras_require"]
    assert "torch" in extras["train"] and "torch" in extras["test"] and "datasets" in extras["test"]
    # bf16 autocast on CUDA breaks cgan-proj's spectral norm before torch 2.4 (vdot)
    assert "torch>=2.4" in extras["train"] and "torch>=2.4" in extras["test"]
    assert "py.typed" in cfg["options.package_data"]["datakit"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert "2026 datakit developers" in (ROOT / "LICENSE").read_text()
    assert (ROOT / "datakit" / "py.typed").exists()
    assert "'.[train,test]'" in (ROOT / "Makefile").read_text()


def test_help_offers_only_the_splits_a_source_has():
    r = CliRunner().invoke(main, ["ingest", "mnist", "--help"])
    assert "[train|test|all]" in r.output and "extra" not in r.output
    r = CliRunner().invoke(main, ["ingest", "svhn", "--help"])
    assert "[train|test|extra|all]" in r.output


def _all_commands(group, prefix=()):
    import click
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from _all_commands(cmd, prefix + (name,))
        else:
            yield prefix + (name,), cmd


@pytest.mark.parametrize("path", [p for p, _ in _all_commands(main)], ids=lambda p: " ".join(p))
def test_every_command_takes_json(path):
    cmd = dict(_all_commands(main))[path]
    assert any("--json" in p.opts for p in cmd.params), f"datakit {' '.join(path)} has no --json"


def test_json_for_one_manifest_is_an_object_and_logging_goes_to_stderr(make_manifest, tmp_path):
    m = make_manifest({"0": 3, "1": 3})
    r = CliRunner().invoke(main, ["-v", "compose", str(m.path), "-o", str(tmp_path / "c.parquet"),
                                  "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["images"] == 6 and out["operations"][-1]["op"]
    r = CliRunner().invoke(main, ["-q", "ingest", "digits", "--size", "8", "--out", str(tmp_path), "--json"])
    assert r.exit_code == 0
    assert json.loads(r.stdout)["images"] == 1797 and r.stderr == ""


def test_the_wheel_holds_every_file_the_package_reads(tmp_path):
    """A `pip install datakit` (not editable) gets what the source tree has: every non-Python
    file under datakit/ (the report's templates, stylesheets and script) is in the wheel."""
    src = tmp_path / "src"
    tracked = subprocess.run(["git", "ls-files", "datakit", "setup.cfg", "pyproject.toml", "README.md",
                              "LICENSE"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in tracked:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes((ROOT / name).read_bytes())
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps",
                            "--no-build-isolation", "-q", "-w", str(tmp_path / "dist")],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    import zipfile
    (wheel,) = (tmp_path / "dist").glob("datakit-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    data = [n for n in tracked if n.startswith("datakit/") and not n.endswith(".py")]
    assert "datakit/report/templates/sort.js" in data
    assert [n for n in data if n not in shipped] == []


@pytest.mark.parametrize("typed, hint", [
    ("ingest digits -q", "datakit -q ingest digits ..."),
    ("stats m.parquet --verbose", "datakit --verbose stats ..."),
])
def test_quiet_or_verbose_after_the_command_says_where_it_goes(typed, hint):
    result = CliRunner().invoke(main, typed.split(), prog_name="datakit")
    assert result.exit_code == 2
    option = typed.split()[-1]
    assert result.output.splitlines()[-1] == (
        f"Error: No such option '{option}'. {option} is an option of datakit itself and goes "
        f"before the command: {hint}")
