"""The ``datakit`` command line. Each sub-command lives in its own module of this package
(one per stage) and registers itself on :data:`main`; all of them are thin layers over the library."""
from datakit.cli.base import main

# Importing a module registers its commands on `main`.
from datakit.cli import ingest  # noqa: F401,E402

for _optional in ("stats", "compose", "train", "audit", "study", "demo"):
    try:
        __import__(f"datakit.cli.{_optional}")
    except ModuleNotFoundError as _e:  # a stage not yet present in this checkout
        if _e.name != f"datakit.cli.{_optional}":
            raise

__all__ = ["main"]
