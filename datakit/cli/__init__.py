"""The ``datakit`` command line. Each stage's commands live in their own module of this
package and register themselves on :data:`main`; all are thin layers over the library."""
from datakit.cli.base import main

# Importing a module registers its commands on `main`.
from datakit.cli import (ingest, stats, compose, train, audit, study, demo, verify,  # noqa: F401,E402
                         label_issues, export)
from datakit.cli import data_home  # noqa: F401,E402

__all__ = ["main"]
