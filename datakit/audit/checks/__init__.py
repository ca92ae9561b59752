"""The built-in audit checks, one module each, registered in the order they run.

Each registers through the public :func:`datakit.audit.registry.register_check`, exactly as a
user's check would; importing this package (which importing :mod:`datakit.audit` does)
registers them once, before any user check.
"""
from __future__ import annotations

from datakit.audit.checks import (cas, collapse, composition, domain, dynamics, judge, label_fidelity,
                                  memorisation, modes, quality, shares)
from datakit.audit.registry import register_check

BUILTINS = (("judge", judge.check), ("label_fidelity", label_fidelity.check),
            ("collapse", collapse.check), ("modes", modes.check), ("quality", quality.check),
            ("shares", shares.check), ("domain", domain.check), ("memorisation", memorisation.check),
            ("dynamics", dynamics.check), ("cas", cas.check), ("composition", composition.check))

for _name, _check in BUILTINS:
    register_check(_name, _check)
