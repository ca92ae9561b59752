"""Every command has --help with an example, and the README shows it."""
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from datakit.cli import main

README = (Path(__file__).parent.parent / "README.md").read_text()


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, cmd in sorted(group.commands.items()):
        path = prefix + (name,)
        yield path, cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, path)


ALL = list(_commands(main))


@pytest.mark.parametrize("path", [p for p, _ in ALL], ids=[" ".join(p) for p, _ in ALL])
def test_every_command_has_help_and_is_in_the_readme(path):
    result = CliRunner().invoke(main, list(path) + ["--help"], prog_name="datakit")
    assert result.exit_code == 0, result.output
    assert "Usage: datakit " + " ".join(path) in result.output
    assert "Example" in result.output, f"`datakit {' '.join(path)} --help` has no Example block"
    assert "datakit " + " ".join(path) in README, f"README does not show `datakit {' '.join(path)}`"


def test_python_dash_m_runs_the_same_cli():
    out = subprocess.run([sys.executable, "-m", "datakit", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("datakit, version ")


def test_readme_starts_with_the_two_setup_commands():
    first_block = README.split("```bash", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in first_block.strip().splitlines()] == ["make demo", "make test"]


def test_examples_name_the_manifests_ingest_writes():
    """`datakit ingest mnist --split train` writes data_manifests/mnist-train.parquet and
    `--subset GoodImg` of chars74k data_manifests/chars74k-goodimg.parquet: every example
    that reads from data_manifests/ uses those names."""
    docs = Path(__file__).parent.parent / "docs"
    texts = {"README.md": README, **{f"docs/{p.name}": p.read_text() for p in docs.glob("*.md")}}
    for path, _ in ALL:
        texts[" ".join(path) + " --help"] = CliRunner().invoke(main, list(path) + ["--help"]).output
    for where, text in texts.items():
        for wrong in ("mnist_train.parquet", "mnist_test.parquet", "data_manifests/mnist_",
                      "data_manifests/goodimg"):
            assert wrong not in text, f"{where} says {wrong}"
    assert "data_manifests/mnist-train.parquet" in texts["train --help"]


def test_the_audit_page_names_the_current_audit_json_schema():
    from datakit.audit.schema import SCHEMA_VERSION
    page = (Path(__file__).parent.parent / "docs" / "audit.md").read_text()
    assert f"(`schema_version` {SCHEMA_VERSION})" in page


def test_the_top_level_example_walks_the_flow_in_order(tmp_path, monkeypatch):
    """`datakit --help` shows ingest -> stats -> train -> audit on the embedded digits, each
    command reading what the one before it wrote (the first two are run here; the training
    and the audit are `datakit demo`'s own, tested in test_demo)."""
    import shlex
    help_text = CliRunner().invoke(main, ["--help"]).output
    example = help_text.split("Example", 1)[1].split("With real data", 1)[0]
    lines = [shlex.split(line.strip())[1:] for line in example.splitlines()
             if line.strip().startswith("datakit ")]
    commands = [next(a for a in args if not a.startswith("-")) for args in lines]
    assert commands[:4] == ["ingest", "stats", "train", "audit"]
    ingest, stats, train, audit = lines[:4]
    assert train[train.index("--out") + 1] == audit[1]           # audit reads train's run dir
    assert stats[1] == train[1]                                  # both read ingest's manifest
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATAKIT_DATA", str(tmp_path / "home"))
    for args in (ingest, stats):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
    assert (tmp_path / stats[1]).is_file()
