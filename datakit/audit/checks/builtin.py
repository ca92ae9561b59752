"""The built-in checks, registered in the order they run (with the public :func:`register_check`)."""
from __future__ import annotations

from datakit.audit.checks import (cas, collapse, composition, domain, dynamics, judge, label_fidelity,
                                  memorisation, modes, quality, register_check, shares)

BUILTINS = (("judge", judge.check), ("label_fidelity", label_fidelity.check),
            ("collapse", collapse.check), ("modes", modes.check), ("quality", quality.check),
            ("shares", shares.check), ("domain", domain.check), ("memorisation", memorisation.check),
            ("dynamics", dynamics.check), ("cas", cas.check), ("composition", composition.check))


def register_builtins() -> None:
    for name, check in BUILTINS:
        register_check(name, check)
