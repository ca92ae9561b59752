"""The ``datakit`` command line. Each stage's commands live in their own module of this
package and register themselves on :data:`main`; all are thin layers over the library."""
# Importing a module registers its commands on `main`.
from datakit.cli import (  # noqa: F401,E402
                         audit,
                         compose,
                         data_home,  # noqa: F401,E402
                         demo,
                         export,
                         ingest,
                         label_issues,
                         stats,
                         study,
                         train,
                         verify,
)
from datakit.cli.base import main

__all__ = ["main"]
