"""datakit: measure how the make-up of a character-image training set shapes what a GAN produces.

The flow is ingest -> compose -> train -> audit; each step is a library function
and a ``datakit`` sub-command of the same name.
"""
__version__ = "0.1.0"

from datakit.errors import DatakitError  # noqa: E402
from datakit.manifest import Manifest, read_manifest, write_manifest  # noqa: E402

__all__ = ["__version__", "DatakitError", "Manifest", "read_manifest", "write_manifest"]
