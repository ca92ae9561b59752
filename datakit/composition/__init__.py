"""Compose manifests into controlled training sets: vary the make-up of a set on purpose.

``config`` holds :class:`ComposeConfig` and the parsers of its CLI spellings, ``selection``
which rows are kept, ``geometry`` how pixels are converted, ``build`` the composition itself.
"""
from datakit.composition.build import compose, rebuild
from datakit.composition.config import ComposeConfig

__all__ = ["ComposeConfig", "compose", "rebuild"]
