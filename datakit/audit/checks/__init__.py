"""The built-in audit checks, one module each, registered in the order they run.

A check module holds ``NAME``, ``check(features, cfg) -> CheckResult`` and, when its table
writes per-class numbers, ``METRICS`` (:class:`datakit.audit.declare.MetricSpec`). Each
registers through the public :func:`datakit.audit.registry.register_check`, exactly as a
user's check would; importing this package (which importing :mod:`datakit.audit` does)
registers them once, before any user check. Adding a built-in check is one module plus one
line below.
"""
from __future__ import annotations

import importlib

from datakit.audit.registry import register_check

BUILTINS = (
    "judge",
    "label_fidelity",
    "collapse",
    "modes",
    "quality",
    "shares",
    "domain",
    "memorisation",
    "dynamics",
    "cas",
    "composition",
    "vendi",
)

for _module in BUILTINS:
    _m = importlib.import_module(f"{__name__}.{_module}")
    register_check(_m.NAME, _m.check, getattr(_m, "METRICS", ()))
