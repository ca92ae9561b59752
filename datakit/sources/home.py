r"""The data home: the one folder where datakit's sources find their original files.

Like scikit-learn's ``get_data_home`` (shared by all its fetchers) and torchvision's
``root``: every source that reads downloaded files (``mnist``, ``svhn``, ``chars74k``)
looks in ``DATA_HOME/<source>/``, in the dataset's original layout, when it is given no
path, and ``--download`` without a path fetches into that folder::

    DATA_HOME/mnist/     train-images-idx3-ubyte.gz, ... (the four IDX files)
    DATA_HOME/chars74k/  EnglishImg.tgz (or EnglishImg-GoodImg.tgz), EnglishFnt.tgz,
                         EnglishHnd.tgz, or the extracted English/ tree
    DATA_HOME/svhn/      train_32x32.mat, test_32x32.mat, extra_32x32.mat

The data home is, in order: the explicit argument; the environment variable
``DATAKIT_DATA``; the platform's per-user data folder (``$XDG_DATA_HOME/datakit`` or
``~/.local/share/datakit`` on Linux, ``~/Library/Application Support/datakit`` on macOS,
``%LOCALAPPDATA%\datakit`` on Windows). Resolving it creates nothing.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from datakit.errors import SourceNotFound

ENV_VAR = "DATAKIT_DATA"

#: The sources that read files from the data home (the embedded ones need none).
HOME_SOURCES = ("mnist", "svhn", "chars74k")


def get_data_home(data_home: str | os.PathLike | None = None) -> Path:
    """The data home: ``data_home`` if given, else ``$DATAKIT_DATA``, else the platform's
    per-user data folder. ``~`` is expanded; the folder is not created."""
    if data_home is not None and str(data_home):
        return Path(data_home).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return _platform_data_dir() / "datakit"


def _platform_data_dir() -> Path:
    """The per-user data folder by the platform's own convention."""
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support"
    xdg = os.environ.get("XDG_DATA_HOME")
    # The XDG spec says a relative $XDG_DATA_HOME is invalid and must be ignored.
    return Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"


def source_home(source: str, data_home: str | os.PathLike | None = None) -> Path:
    """Where ``source`` looks for its files when given no path: ``DATA_HOME/<source>``."""
    return get_data_home(data_home) / source


def not_in_home(what: str, folder: Path, looked_for: str) -> SourceNotFound:
    """The error for a source whose files are not in the data home (one line, saying
    where it looked and that ``--download`` fetches them there)."""
    return SourceNotFound(
        f"{what} not found in the data home: looked in {folder} for {looked_for}. "
        f"Use --download to fetch them there, or pass the folder that holds them.")
