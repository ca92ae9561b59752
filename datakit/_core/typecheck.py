"""Check a dictionary of settings (from TOML, JSON or ``--set``) against a dataclass's field types.

The study file is checked completely before any work starts, so that a wrong type
(``steps = "many"``, ``ema = 3``) is a one-line error naming the key, not a traceback an
hour into an ingest.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import types
import typing
from typing import Any, Iterable

from datakit.errors import DatakitError

#: The largest seed a setting may hold: seeds feed torch and NumPy generators, sometimes
#: offset or multiplied (``seed * 1_000_003 + rank``), which must stay within 64 bits.
MAX_SEED = 2 ** 32 - 1


def key_mismatch(got: Iterable[Any], required: Iterable[str], allowed: Iterable[str] | None = None) -> str:
    """``"; missing a, b; unknown c"`` for the keys of ``got`` against the ``required`` ones
    (and the ``allowed`` ones, default the required), in their orders; ``""`` when they fit."""
    got, required = list(got), list(required)
    allowed = set(required if allowed is None else allowed)
    missing = [k for k in required if k not in got]
    unknown = [k for k in got if k not in allowed]
    return (f"{'; missing ' + ', '.join(missing) if missing else ''}"
            f"{'; unknown ' + ', '.join(map(str, unknown)) if unknown else ''}")


def _accepts(value: Any, hint: Any) -> bool:
    """True when ``value`` (a TOML value) fits the type ``hint``; unknown hints accept anything."""
    if hint is Any or hint is inspect.Parameter.empty:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) \
            and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple) or hint in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if dataclasses.is_dataclass(hint):
        return isinstance(value, dict)
    return True


def _describe(hint: Any) -> str:
    names = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string",
             type(None): "unset"}
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) \
        else (hint,)
    return " or ".join(names.get(a, getattr(a, "__name__", str(a))) for a in args
                       if a is not type(None))


def check_types(values: dict[str, Any], hints: dict[str, Any], where: str,
                error: type[DatakitError]) -> None:
    """Raise ``error`` naming the first key of ``values`` whose value does not fit its hint."""
    for key, value in values.items():
        hint = hints.get(key, Any)
        if not _accepts(value, hint):
            raise error(f"{where}: `{key}` must be {_describe(hint)}, got {value!r}.")


def dataclass_hints(cls: type) -> dict[str, Any]:
    """Field name -> type of a dataclass (string annotations resolved)."""
    return typing.get_type_hints(cls)


def signature_hints(func: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Keyword parameter -> type of a function: its annotation, else its default's type."""
    hints = typing.get_type_hints(func)
    out = {}
    for name, p in inspect.signature(func).parameters.items():
        if name in skip or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out[name] = hints.get(name, type(p.default) if p.default not in (None, p.empty) else Any)
    return out
