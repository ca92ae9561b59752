"""The one number format of the report pages: significant digits, never ten decimals.

Every number on a page (tables, figure labels, CSV cells excepted) goes through :func:`fmt`,
so a value quoted by a verdict sentence reads the same in the tables. Contrast sentences
(:mod:`datakit.study.contrasts`) quote differences as ``+.3g``: :func:`fmt` with ``signed=True``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Significant digits of every non-integer number shown.
DIGITS = 3


def fmt(x: Any, signed: bool = False) -> str:
    """A number for a page: 3 significant digits, ints as ints with separators, '–' for missing."""
    if x is None:
        return "–"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return f"{int(x):+,}" if signed else f"{int(x):,}"
    if isinstance(x, (float, np.floating)):
        if not math.isfinite(float(x)):
            return "–"
        if float(x).is_integer() and abs(x) < 1e6 and not signed:
            return f"{int(x):,}"
        return f"{float(x):{'+' if signed else ''}.{DIGITS}g}"
    return str(x)


def pct(x: Any) -> str:
    """A share as a percentage with one decimal."""
    return "–" if x is None else f"{100 * float(x):.1f}%"
