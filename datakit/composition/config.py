"""``ComposeConfig``: every setting of a composition, typed, and the parsers of its CLI spellings."""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from datakit.errors import CompositionError, UnknownName
from datakit.manifest.model import CHARS62

CLASS_SETS = {"digits": CHARS62[:10], "upper": CHARS62[10:36], "lower": CHARS62[36:], "all": CHARS62}
DEDUPE = ("exact", "near")
POLARITY = ("keep", "dark-on-light", "light-on-dark")
SHARE_COLUMNS = ("parent", "subset", "dataset", "domain")
#: The largest --image-size: the same bound as ingest's --size (a 100000-pixel side
#: would ask for hundreds of GiB).
MAX_IMAGE_SIZE = 1024


# ---------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------
def _split_list(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    items = [str(i).strip() for i in items if str(i).strip()]
    return items or None


def _pairs(text: str, what: str, example: str) -> list[tuple[str, str]]:
    pairs = []
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise CompositionError(f"Cannot read {what} {text!r}: write it as {example}.")
        pairs.append((key.strip(), value.strip()))
    return pairs


def parse_classes(value: str | Sequence[str] | None) -> str | list[str] | None:
    """``digits``, ``upper``, ``lower``, ``all`` (kept as the set's name) or a comma list of
    class names (returned as a list)."""
    if isinstance(value, str) and value.strip() in CLASS_SETS:
        return value.strip()
    return _split_list(value)


def parse_weights(value: str | dict[str, float] | None) -> dict[str, float] | None:
    """``"mnist=1,fnt=3"`` -> ``{"mnist": 1.0, "fnt": 3.0}`` (weights need not sum to 1)."""
    if value is None or isinstance(value, dict):
        return {str(k): float(v) for k, v in value.items()} if value else None
    out = {}
    for k, v in _pairs(value, "--weights", "PART=WEIGHT,PART=WEIGHT (e.g. mnist=0.7,fnt=0.3)"):
        try:
            out[k] = float(v)
        except ValueError:
            raise CompositionError(f"Weight {v!r} for {k!r} in --weights is not a number.") from None
    if any(w < 0 for w in out.values()) or sum(out.values()) <= 0:
        raise CompositionError(f"--weights {value!r} must be non-negative with a positive sum.")
    return out


def parse_fraction(value: str | dict[str, Any] | None) -> dict[str, Any] | None:
    """``"domain=synthetic:0.3"`` -> ``{"column": "domain", "shares": {"synthetic": 0.3}}``.

    Several values may share one column: ``domain=synthetic:0.3,wild:0.5``; rows with other
    values share what is left.
    """
    if value is None or isinstance(value, dict):
        return value or None
    example = "COLUMN=VALUE:SHARE (e.g. domain=synthetic:0.3)"
    column, sep, rest = value.partition("=")
    column = column.strip()
    if not sep or column not in SHARE_COLUMNS[1:]:
        raise CompositionError(
            f"Cannot read --fraction {value!r}: write it as {example}; COLUMN is one of "
            f"{', '.join(SHARE_COLUMNS[1:])}.")
    shares = {}
    for item in rest.split(","):
        name, sep, share = item.rpartition(":")
        try:
            shares[name.strip()] = float(share)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise CompositionError(f"Cannot read --fraction {value!r}: write it as {example}.")
    if any(not 0 <= s <= 1 for s in shares.values()) or sum(shares.values()) > 1 + 1e-9:
        raise CompositionError(f"--fraction {value!r}: shares must lie in 0..1 and sum to at most 1.")
    return {"column": column, "shares": shares}


def parse_class_counts(value: str | dict[str, int] | None) -> dict[str, int] | None:
    """``"0=500,1=50"`` -> ``{"0": 500, "1": 50}``."""
    if value is None or isinstance(value, dict):
        return {str(k): int(v) for k, v in value.items()} if value else None
    out = {}
    for k, v in _pairs(value, "--class-counts", 'CLASS=COUNT,... (e.g. "0=500,1=50")'):
        if not v.isdigit():
            raise CompositionError(f"Count {v!r} for class {k!r} in --class-counts is not a whole number.")
        out[k] = int(v)
    return out


def parse_skew(value: str | None) -> dict[str, Any] | None:
    """``"zipf:1.5"`` or ``"step:0.1"`` -> ``{"kind": ..., "param": ...}``."""
    if value is None or isinstance(value, dict):
        return value or None
    kind, _, param = value.partition(":")
    try:
        p = float(param)
    except ValueError:
        p = float("nan")
    if kind not in ("zipf", "step") or not np.isfinite(p) or p <= 0 or (kind == "step" and p > 1):
        raise CompositionError(
            f"Cannot read --skew {value!r}: use zipf:A (A > 0, class k gets k^-A of the first) "
            "or step:F (0 < F <= 1, the second half of the classes at F times the first half).")
    return {"kind": kind, "param": p}


@dataclass
class ComposeConfig:
    """Every parameter of a composition (saved in the sidecar; :func:`rebuild` replays it).

    String forms as on the command line are accepted and normalised: ``classes="digits"``,
    ``weights="a=1,b=3"``, ``fraction="domain=synthetic:0.3"``, ``class_counts="0=500"``,
    ``skew="step:0.1"``, comma lists for ``domain``/``subset``/``split``/``drop_classes``.
    """

    classes: Any = None
    domain: Any = None
    subset: Any = None
    split: Any = None
    drop_classes: Any = None
    dedupe: str | None = None
    weights: Any = None
    fraction: Any = None
    class_counts: Any = None
    skew: Any = None
    max_per_class: int | None = None
    size: int | None = None
    stratify: bool = True
    holdout: float | None = None
    image_size: int | None = None
    channels: int | None = None
    polarity: str = "keep"
    seed: int = 0

    def __post_init__(self) -> None:
        self.classes = parse_classes(self.classes)
        for name in ("domain", "subset", "split", "drop_classes"):
            setattr(self, name, _split_list(getattr(self, name)))
        self.weights = parse_weights(self.weights)
        self.fraction = parse_fraction(self.fraction)
        self.class_counts = parse_class_counts(self.class_counts)
        self.skew = parse_skew(self.skew)
        if self.weights and self.fraction:
            raise CompositionError("Use --weights or --fraction, not both: each sets the parts' shares.")
        if self.dedupe is not None and self.dedupe not in DEDUPE:
            raise UnknownName(f"Unknown --dedupe value {self.dedupe!r}; use one of: {', '.join(DEDUPE)}.")
        if self.polarity not in POLARITY:
            raise UnknownName(f"Unknown --polarity value {self.polarity!r}; use one of: {', '.join(POLARITY)}.")
        if self.channels is not None and int(self.channels) not in (1, 3):
            raise CompositionError(f"--channels must be 1 or 3, not {self.channels}.")
        for name in ("size", "max_per_class", "image_size"):
            v = getattr(self, name)
            if v is not None and int(v) < 1:
                raise CompositionError(f"--{name.replace('_', '-')} must be at least 1, not {v}.")
        if self.image_size is not None and int(self.image_size) > MAX_IMAGE_SIZE:
            raise CompositionError(f"--image-size {self.image_size} is larger than the "
                                   f"{MAX_IMAGE_SIZE}-pixel limit (ingest's largest --size); "
                                   f"use a value from 1 to {MAX_IMAGE_SIZE}.")
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool) \
                or not 0 <= self.seed < 2 ** 63:
            raise CompositionError(f"--seed must be a whole number from 0 to 2**63-1, "
                                   f"not {self.seed!r}.")
        if self.holdout is not None and not 0 < float(self.holdout) < 1:
            raise CompositionError(f"--holdout must lie strictly between 0 and 1, not {self.holdout}.")

    def to_dict(self) -> dict[str, Any]:
        """The normalised parameters, JSON-ready (what the sidecar's ``config`` holds)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ComposeConfig":
        """A config from a sidecar's ``config`` (unknown keys from newer versions are ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
