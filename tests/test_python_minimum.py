"""The oldest Python that setup.cfg promises: no interpreter that old runs here, so vermin reads
the source and names every standard-library module, member or syntax newer than
``python_requires`` (``tomllib``, ``datetime.UTC``, ``typing.Self``, ``except*``, ...).

A 3.11+ import that has a fallback (``try: import tomllib / except: import tomli``) carries a
``# novm`` comment on that one line; vermin then skips only that line, so the same import
anywhere else is still caught (the planted files below check that)."""
from __future__ import annotations

import configparser
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent

#: One file per construct Python 3.10 lacks; vermin must name each.
PLANTED = {
    "tomllib_bare.py": "import tomllib\n",
    "datetime_utc.py": "import datetime\nNOW = datetime.datetime.now(datetime.UTC)\n",
    "typing_self.py": "from typing import Self\n",
    "except_star.py": "try:\n    pass\nexcept* ValueError:\n    pass\n",
    "strenum.py": "from enum import StrEnum\n",
}
#: The fallback as datakit/study.py writes it: must pass.
FALLBACK = ("try:\n    import tomllib  # novm: tomli below on 3.10\n"
            "except ModuleNotFoundError:\n    import tomli as tomllib\n")


def minimum_python() -> str:
    """``3.10`` from setup.cfg's ``python_requires = >=3.10``."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    m = re.fullmatch(r">=\s*(3\.\d+)", cfg["options"]["python_requires"].strip())
    assert m, f"setup.cfg python_requires {cfg['options']['python_requires']!r} is not '>=3.N'"
    return m.group(1)


def vermin(*paths: Path | str) -> subprocess.CompletedProcess:
    """vermin with ``--target=MIN-``: exit 1 and one line per construct newer than MIN."""
    assert importlib.util.find_spec("vermin"), "vermin is in the test extra: pip install -e '.[test]'"
    args = ["--no-config-file", f"--target={minimum_python()}-", "--violations", "--eval-annotations",
            "--no-tips", "--no-make-paths-absolute", "--processes=1", *map(str, paths)]
    return subprocess.run([sys.executable, "-c", "import sys, vermin; sys.exit(vermin.main())", *args],
                          capture_output=True, text=True, cwd=ROOT)


def test_setup_declares_python_310():
    assert minimum_python() == "3.10"


def test_package_and_tests_run_on_the_minimum_python():
    out = vermin("datakit", "tests", "bench")
    assert out.returncode == 0, out.stdout + out.stderr
    analysed = int(re.search(r"Analyzing (\d+) files", out.stdout).group(1))
    assert analysed > 100, out.stdout  # the folders really were read


def test_vermin_names_each_planted_newer_construct_and_passes_the_fallback(tmp_path):
    for name, text in PLANTED.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "fallback.py").write_text(FALLBACK)
    out = vermin(tmp_path)
    assert out.returncode == 1
    flagged = set(re.findall(r"(\w+\.py)\n", out.stdout))
    assert flagged == set(PLANTED), out.stdout
    assert "requires !2, 3.11" in out.stdout


def test_fallback_alone_passes(tmp_path):
    (tmp_path / "fallback.py").write_text(FALLBACK)
    assert vermin(tmp_path).returncode == 0
