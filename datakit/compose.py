"""Compose manifests into controlled training sets: vary the make-up of a set on purpose.

:func:`compose` writes a new manifest from one or more existing ones. The operations run in
this fixed order, each on the result of the one before (only those asked for run):

1. **select**    keep rows by ``classes`` (digits|upper|lower|list), ``domain``, ``subset``,
                 ``split``; remove ``drop_classes``.
2. **vocabulary** harmonise classes across parents by ``class_name`` (labels are re-numbered
                 0..K-1 in Chars74K order: digits, upper, lower; other names after, sorted).
3. **dedupe**    drop exact (same pixel sha256) or near (same perceptual hash) duplicates,
                 keeping the first row of each group (parents in the order given).
4. **mix**       set each part's share: ``weights`` per parent (or subset/dataset/domain
                 value), or ``fraction`` such as ``domain=synthetic:0.3``; parts are cut down
                 (stratified by class) to the largest total that honours the shares.
5. **skew**      impose a class distribution: ``class_counts``, ``skew`` (``zipf:A`` or
                 ``step:F``), then ``max_per_class``; each class keeps its part shares.
6. **subsample** to ``size`` images, stratified by class (and part, when mixed) by default.
7. **split**     ``holdout`` fraction as ``test``, stratified by class, leakage-free: images
                 that are exact or near duplicates always land on the same side.
8. **geometry**  resize (antialiased, aspect kept by padding) to ``image_size`` and convert
                 to ``channels`` (defaults: the largest size and most channels among the
                 parents), and optionally flip ``polarity``; only for the rows kept.

The sidecar records the parents (path + checksum), every operation with its parameters and
the rows it left, the seed and the resolved :class:`ComposeConfig`; :func:`rebuild`
re-creates the manifest from those, bit-identical. Randomness comes from one seeded
generator per operation, so a composition is deterministic for a seed.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd

from datakit.errors import ChecksumMismatch, CompositionError, UnknownName
from datakit.names import check_name
from datakit.manifest import (CHARS62, COLUMNS, Manifest, manifest_paths, read_manifest,
                              write_manifest_chunks)
from datakit.pixel_spill import chunk_rows
from datakit.progress import log
from datakit.resample import resize_bilinear
from datakit.near_duplicates import near_groups
from datakit.store_reader import StoreReader
from datakit.stats import (NEAR_THRESHOLD, THUMB_SIDE, duplicate_groups, grey_images, linked_groups,
                           perceptual_hash, thumbnails)

CLASS_SETS = {"digits": CHARS62[:10], "upper": CHARS62[10:36], "lower": CHARS62[36:], "all": CHARS62}
DEDUPE = ("exact", "near")
POLARITY = ("keep", "dark-on-light", "light-on-dark")
SHARE_COLUMNS = ("parent", "subset", "dataset", "domain")
#: The fixed order of the operations (each one's random generator is spawned in this order).
ORDER = ("select", "vocabulary", "dedupe", "mix", "skew", "subsample", "split", "geometry")


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


# ---------------------------------------------------------------------------------------
# sampling helpers (vectorised: one random priority per row, ranks within strata)
# ---------------------------------------------------------------------------------------
def _allocate(available: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over strata in proportion to ``available`` (largest remainder, capped)."""
    available = np.asarray(available, dtype=np.int64)
    if available.sum() == 0:
        return np.zeros_like(available)
    exact = available * (total / available.sum())
    out = np.minimum(np.floor(exact).astype(np.int64), available)
    short = total - out.sum()
    if short > 0:
        order = np.argsort(-(exact - out), kind="stable")
        for i in order:
            if short == 0:
                break
            if out[i] < available[i]:
                out[i] += 1
                short -= 1
    return out


def _take(strata: np.ndarray, targets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask keeping ``targets[s]`` random rows of every stratum ``s``."""
    priority = rng.random(len(strata))
    order = np.lexsort((priority, strata))
    sorted_strata = strata[order]
    starts = np.searchsorted(sorted_strata, sorted_strata, side="left")
    rank = np.arange(len(order)) - starts
    keep = np.zeros(len(strata), dtype=bool)
    keep[order] = rank < targets[sorted_strata]
    return keep


def _take_per_class(table: pd.DataFrame, class_targets: dict[str, int], rng: np.random.Generator) -> np.ndarray:
    """Keep ``class_targets[c]`` rows of each class, split over share groups in proportion."""
    strata, keys = pd.factorize(table["class_name"] + "\x00" + table["_group"], sort=True)
    counts = np.bincount(strata, minlength=len(keys))
    targets = np.zeros(len(keys), dtype=np.int64)
    cls_of = np.array([k.split("\x00")[0] for k in keys])
    for c, n in class_targets.items():
        idx = np.flatnonzero(cls_of == c)
        targets[idx] = _allocate(counts[idx], n)
    return _take(strata, targets, rng)


# ---------------------------------------------------------------------------------------
# steps
# ---------------------------------------------------------------------------------------
def _vocabulary(names: Sequence[str]) -> list[str]:
    known = [c for c in CHARS62 if c in set(names)]
    return known + sorted(set(names) - set(CHARS62))


def _available(table: pd.DataFrame) -> str:
    counts = table["class_name"].value_counts()
    return ", ".join(f"{c}={int(counts[c])}" for c in _vocabulary(list(counts.index)))


def _names(parents: Sequence[Manifest]) -> str:
    return ", ".join(m.path.name for m in parents)


def _union(parents: Sequence[Manifest]) -> pd.DataFrame:
    parts = []
    for i, m in enumerate(parents):
        t = m.table[COLUMNS].copy()
        t["parent"] = m.name if sum(p.name == m.name for p in parents) == 1 else f"{m.name}#{i}"
        t["_part"] = i
        parts.append(t)
    table = pd.concat(parts, ignore_index=True)
    table["_group"] = ""
    return table


def _select(table: pd.DataFrame, cfg: ComposeConfig, parents: Sequence[Manifest]) -> tuple[pd.DataFrame, list]:
    ops = []
    for col in ("domain", "subset", "split"):
        wanted = getattr(cfg, col)
        if wanted:
            have = sorted(set(table[col]))
            unknown = [w for w in wanted if w not in have]
            if unknown:
                raise CompositionError(
                    f"No images with {col} {', '.join(map(repr, unknown))} in {_names(parents)}; "
                    f"available: {', '.join(have)}.")
            table = table[table[col].isin(wanted)]
            ops.append({"op": "select", col: wanted, "rows": int(len(table))})
    if cfg.classes:
        # A named set (digits, upper, lower) keeps whichever of its classes exist;
        # an explicit list must name classes that exist.
        named = isinstance(cfg.classes, str)
        wanted = CLASS_SETS[cfg.classes] if named else cfg.classes
        have = set(table["class_name"])
        absent = [c for c in wanted if c not in have]
        if (named and len(absent) == len(wanted)) or (not named and absent):
            raise CompositionError(
                f"No images of class {' '.join(absent)} in {_names(parents)}; "
                f"available: {_available(table)}.")
        table = table[table["class_name"].isin(wanted)]
        ops.append({"op": "select", "classes": cfg.classes, "rows": int(len(table))})
    if cfg.drop_classes:
        table = table[~table["class_name"].isin(cfg.drop_classes)]
        ops.append({"op": "drop_classes", "classes": cfg.drop_classes, "rows": int(len(table))})
    if len(table) == 0:
        raise CompositionError("The selection leaves no images; check --classes, --domain, "
                               "--subset, --split and --drop-classes against `datakit stats`.")
    if len(parents) > 1:
        sets = [set(table.loc[table["_part"] == i, "class_name"]) for i in range(len(parents))]
        sets = [s for s in sets if s]
        if len(sets) > 1 and not set.intersection(*sets):
            listing = "; ".join(f"{parents[i].name}: {' '.join(_vocabulary(list(s)))}"
                                for i, s in enumerate(sets))
            raise CompositionError(
                f"{_names(parents)} share no class, so there is nothing to mix ({listing}). "
                "Select overlapping classes with --classes.")
    return table, ops


def _per_parent(table: pd.DataFrame, parents: Sequence[Manifest], fn, dtype, width: int = 0) -> np.ndarray:
    """Apply ``fn`` to each parent's pixels of the table's rows (read in store order)."""
    out = np.zeros((len(table), width) if width else len(table), dtype=dtype)
    part = table["_part"].to_numpy()
    rows = table["row"].to_numpy()
    for i, m in enumerate(parents):
        mask = part == i
        if mask.any():
            order = np.argsort(rows[mask], kind="stable")
            values = fn(np.asarray(m.pixels[rows[mask][order]]))
            placed = np.empty_like(values)
            placed[order] = values
            out[mask] = placed
    return out


def _copy_groups(table: pd.DataFrame, parents: Sequence[Manifest]) -> np.ndarray:
    """Group number per row for images that are exact or near copies of another (-1: none).

    Works across parents of different geometry: the perceptual hash and the thumbnails
    that confirm it are both computed at a fixed size.
    """
    hashes = _per_parent(table, parents, perceptual_hash, np.uint64)
    near = near_groups(hashes, table["sha256"].to_numpy(),
                       lambda rows: _per_parent(table.iloc[rows], parents, thumbnails, np.float32,
                                                THUMB_SIDE * THUMB_SIDE),
                       threshold=NEAR_THRESHOLD)
    return linked_groups(duplicate_groups(table["sha256"]), near)


def _dedupe(table: pd.DataFrame, cfg: ComposeConfig, copies: np.ndarray | None) -> tuple[pd.DataFrame, np.ndarray | None, list]:
    if cfg.dedupe == "exact":
        keys = table["sha256"].to_numpy()
    else:  # rows without copies get their own key
        keys = np.where(copies >= 0, copies, -1 - np.arange(len(table)))
    first = ~pd.Series(keys).duplicated().to_numpy()
    op = {"op": "dedupe", "method": cfg.dedupe, "dropped": int((~first).sum()), "rows": int(first.sum())}
    return table[first], (copies[first] if copies is not None else None), [op]


def _share_groups(table: pd.DataFrame, cfg: ComposeConfig) -> tuple[str, dict[str, float]]:
    """The column that defines the parts and each part's target share."""
    if cfg.fraction:
        column, shares = cfg.fraction["column"], dict(cfg.fraction["shares"])
        have = set(table[column])
        unknown = [v for v in shares if v not in have]
        if unknown:
            raise CompositionError(
                f"--fraction names {column} {', '.join(map(repr, unknown))}, which the selection "
                f"does not hold; available: {', '.join(sorted(have))}.")
        rest = 1.0 - sum(shares.values())
        if have - set(shares):
            shares["(rest)"] = rest
        elif rest > 1e-9:
            raise CompositionError(
                f"--fraction asks for {', '.join(f'{v} {s:.0%}' for v, s in shares.items())} of {column}, "
                f"but the selection holds nothing else to make up the other {rest:.0%}; "
                f"available {column} values: {', '.join(sorted(have))}.")
        return column, shares
    weights = cfg.weights
    for column in SHARE_COLUMNS:
        have = set(table[column])
        if set(weights) <= have:
            total = sum(weights.values())
            return column, {k: v / total for k, v in weights.items()}
    raise CompositionError(
        f"--weights names {', '.join(map(repr, weights))}, which match no parent name, subset, "
        f"dataset or domain; parents: {', '.join(sorted(set(table['parent'])))}; "
        f"subsets: {', '.join(sorted(set(table['subset'])))}.")


def _mix(table: pd.DataFrame, cfg: ComposeConfig, rng: np.random.Generator) -> tuple[pd.DataFrame, list]:
    column, shares = _share_groups(table, cfg)
    group = table[column].where(table[column].isin(list(shares)), "(rest)")
    table = table.assign(_group=group.to_numpy())
    table = table[table["_group"].map(lambda g: shares.get(g, 0.0) > 0)]
    avail = table["_group"].value_counts()
    live = {g: s for g, s in shares.items() if s > 0}
    missing = [g for g in live if g not in avail.index]
    if missing:
        raise CompositionError(f"No images for the part(s) {', '.join(missing)} of the mix.")
    total = min(avail[g] / s for g, s in live.items())
    targets = {g: min(int(avail[g]), int(round(total * s))) for g, s in live.items()}
    keep = np.zeros(len(table), dtype=bool)
    for g, n in targets.items():
        mask = (table["_group"] == g).to_numpy()
        sub = table[mask]
        counts = sub["class_name"].value_counts()
        cls_targets = dict(zip(counts.index, _allocate(counts.to_numpy(), n)))
        keep[np.flatnonzero(mask)[_take_per_class(sub, cls_targets, rng)]] = True
    table = table[keep]
    return table, [{"op": "mix", "by": column, "shares": shares, "counts": targets, "rows": int(len(table))}]


def _skew(table: pd.DataFrame, cfg: ComposeConfig, vocab: list[str], rng: np.random.Generator) -> tuple[pd.DataFrame, list]:
    counts = table["class_name"].value_counts()
    present = [c for c in vocab if counts.get(c, 0) > 0]
    targets = {c: int(counts[c]) for c in present}
    ops = []
    if cfg.class_counts:
        for c, n in cfg.class_counts.items():
            if c not in targets:
                raise CompositionError(f"--class-counts names class {c!r}, which the selection does not hold; "
                                       f"available: {_available(table)}.")
            if n > targets[c]:
                raise CompositionError(f"--class-counts asks for {n} images of class {c!r} but only "
                                       f"{targets[c]} exist; available: {_available(table)}.")
            targets[c] = n
        ops.append({"op": "class_counts", "counts": dict(cfg.class_counts)})
    if cfg.skew:
        kind, p = cfg.skew["kind"], cfg.skew["param"]
        k = len(present)
        if kind == "zipf":
            rel = np.arange(1, k + 1, dtype=float) ** -p
        else:  # step: the first half (rounded up) at full size, the rest at F
            rel = np.where(np.arange(k) < (k + 1) // 2, 1.0, p)
        avail = np.array([targets[c] for c in present], dtype=float)
        top = np.min(avail / rel)  # the largest first-class count every class can honour
        want = np.maximum(1, np.floor(top * rel + 1e-9)).astype(int)
        targets = {c: int(min(n, targets[c])) for c, n in zip(present, want)}
        ops.append({"op": "skew", "kind": kind, "param": p, "class_order": present})
    if cfg.max_per_class:
        targets = {c: min(n, int(cfg.max_per_class)) for c, n in targets.items()}
        ops.append({"op": "max_per_class", "max": int(cfg.max_per_class)})
    table = table[_take_per_class(table, targets, rng)]
    ops[-1]["counts"] = {c: int(n) for c, n in targets.items()}
    ops[-1]["rows"] = int(len(table))
    return table, ops


def _subsample(table: pd.DataFrame, cfg: ComposeConfig, rng: np.random.Generator) -> tuple[pd.DataFrame, list]:
    n = int(cfg.size)
    if n > len(table):
        raise CompositionError(f"--size {n} asks for more images than the {len(table)} available after "
                               f"the earlier steps (per class: {_available(table)}).")
    if cfg.stratify:
        strata, keys = pd.factorize(table["class_name"] + "\x00" + table["_group"], sort=True)
        targets = _allocate(np.bincount(strata, minlength=len(keys)), n)
        keep = _take(strata, targets, rng)
    else:
        keep = np.zeros(len(table), dtype=bool)
        keep[rng.choice(len(table), size=n, replace=False)] = True
    table = table[keep]
    return table, [{"op": "subsample", "size": n, "stratify": bool(cfg.stratify), "rows": int(len(table))}]


def _holdout(table: pd.DataFrame, cfg: ComposeConfig, copies: np.ndarray, rng: np.random.Generator) -> tuple[pd.DataFrame, list]:
    """Assign whole duplicate groups to train or test so that no image crosses the split."""
    group, _ = pd.factorize(pd.Series(np.where(copies >= 0, copies, -1 - np.arange(len(table)))), sort=False)
    g = pd.DataFrame({"group": group, "class_name": table["class_name"].to_numpy()})
    first = g.groupby("group", sort=True).agg(class_name=("class_name", "first"), size=("class_name", "size"))
    first["priority"] = rng.random(len(first))
    first = first.sort_values(["class_name", "priority"], kind="stable")
    per_class = first.groupby("class_name")["size"].transform("sum")
    target = np.floor(per_class * float(cfg.holdout) + 0.5)
    cum = first.groupby("class_name")["size"].cumsum()
    test_groups = first.index[(cum <= target).to_numpy()]
    split = np.where(np.isin(group, test_groups.to_numpy()), "test", "train")
    table = table.assign(split=split)
    n_test = int((split == "test").sum())
    return table, [{"op": "split", "holdout": float(cfg.holdout), "by": "class, duplicate groups kept together",
                    "train": int(len(table) - n_test), "test": n_test, "rows": int(len(table))}]


# ---------------------------------------------------------------------------------------
# geometry
# ---------------------------------------------------------------------------------------
def _to_channels(images: np.ndarray, channels: int) -> np.ndarray:
    c = images.shape[3]
    if c == channels:
        return images
    if channels == 3:
        return np.repeat(images[..., :1], 3, axis=3)
    # ITU-R 601-2 luma, as PIL's convert("L")
    grey = images[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)[..., None]


def _resize(images: np.ndarray, height: int, width: int, chunk: int = 4096) -> np.ndarray:
    """Antialiased resize that keeps the aspect ratio (pads with each image's border colour)."""
    n, h, w, c = images.shape
    if (h, w) == (height, width):
        return images
    scale = min(height / h, width / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    top, left = (height - nh) // 2, (width - nw) // 2
    out = np.empty((n, height, width, c), dtype=np.uint8)
    for s in range(0, n, chunk):
        small = resize_bilinear(images[s:s + chunk], nh, nw)
        if (nh, nw) != (height, width):
            border = np.concatenate([small[:, 0], small[:, -1], small[:, :, 0], small[:, :, -1]], axis=1)
            fill = np.median(border, axis=1).astype(np.uint8)  # (n, c)
            out[s:s + chunk] = fill[:, None, None, :]
        out[s:s + chunk, top:top + nh, left:left + nw] = small
    return out


def _polarity(images: np.ndarray, target: str) -> np.ndarray:
    """Invert images whose background (border) does not match the wanted polarity."""
    if target == "keep":
        return images
    grey = images[..., 0] if images.shape[3] == 1 else grey_images(images)
    border = np.concatenate([grey[:, 0], grey[:, -1], grey[:, :, 0], grey[:, :, -1]], axis=1)
    light_background = border.mean(axis=1, dtype=np.float32) > \
        grey.reshape(len(grey), -1).mean(axis=1, dtype=np.float32)
    flip = np.flatnonzero(~light_background if target == "dark-on-light" else light_background)
    out = np.array(images)
    out[flip] = 255 - out[flip]
    return out


def _convert(images: np.ndarray, height: int, width: int, channels: int, polarity: str) -> np.ndarray:
    """Geometry and polarity of one parent's images, cheapest order first: drop channels
    before resizing, add them after (resizing and flipping three equal channels is waste)."""
    if images.shape[3] > channels:
        images = _to_channels(images, channels)
    return _to_channels(_polarity(_resize(images, height, width), polarity), channels)


def _target_geometry(parents: Sequence[Manifest], used: set[int], cfg: ComposeConfig) -> tuple[int, int, int]:
    geoms = [parents[i].geometry for i in sorted(used)]
    h = int(cfg.image_size) if cfg.image_size else max(g.height for g in geoms)
    w = int(cfg.image_size) if cfg.image_size else max(g.width for g in geoms)
    c = int(cfg.channels) if cfg.channels else max(g.channels for g in geoms)
    return h, w, c


# ---------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------
def _open(m: Manifest | str | os.PathLike) -> Manifest:
    return m if isinstance(m, Manifest) else read_manifest(m)


def compose(manifests: Sequence[Manifest | str | os.PathLike], out: str | os.PathLike, *,
            config: ComposeConfig | None = None, **options: Any) -> Manifest:
    """Compose one or more manifests into a new one (see the module docstring for the order).

    Args:
        manifests: parent manifests (opened, or paths to their ``.parquet``).
        out: the new manifest's ``.parquet`` path (sidecar and pixel store go beside it).
        config: every parameter; or pass them as keyword ``options`` (fields of
            :class:`ComposeConfig`, string forms accepted).

    Raises:
        CompositionError: an impossible request; the message says what is available.
    """
    if config is None:
        config = ComposeConfig(**options)
    elif options:
        config = dataclasses.replace(config, **options)
    cfg = config
    if not manifests:
        raise CompositionError("Give at least one manifest to compose from.")
    target = manifest_paths(out)[0]
    check_name(target.name[: -len(".parquet")], "output manifest name (-o)")
    parents = [_open(m) for m in manifests]
    target = target.resolve()
    for m in parents:
        if m.path.resolve() == target:
            raise CompositionError(
                f"The output {out} is the parent manifest {m.path.name}; manifests are immutable, "
                "so write the composition to a new path with -o.")
    seeds = np.random.SeedSequence(int(cfg.seed)).spawn(len(ORDER))
    rngs = {name: np.random.default_rng(s) for name, s in zip(ORDER, seeds)}

    table, ops = _select(_union(parents), cfg, parents)                        # 1 select
    vocab = _vocabulary(list(set(table["class_name"])))                        # 2 vocabulary
    ops.append({"op": "vocabulary", "classes": vocab, "rows": int(len(table))})
    need_hash = cfg.dedupe == "near" or cfg.holdout is not None
    copies = _copy_groups(table, parents) if need_hash else None
    if cfg.dedupe:                                                              # 3 dedupe
        table, copies, more = _dedupe(table, cfg, copies)
        ops += more
    if cfg.weights or cfg.fraction:                                             # 4 mix
        before = table.index
        table, more = _mix(table, cfg, rngs["mix"])
        copies = copies[before.get_indexer(table.index)] if copies is not None else None
        ops += more
    if cfg.class_counts or cfg.skew or cfg.max_per_class:                       # 5 skew
        before = table.index
        table, more = _skew(table, cfg, vocab, rngs["skew"])
        copies = copies[before.get_indexer(table.index)] if copies is not None else None
        ops += more
    if cfg.size:                                                                # 6 subsample
        before = table.index
        table, more = _subsample(table, cfg, rngs["subsample"])
        copies = copies[before.get_indexer(table.index)] if copies is not None else None
        ops += more
    if len(table) == 0:
        raise CompositionError("The composition is empty: no images are left after the operations.")
    if cfg.holdout is not None:                                                 # 7 split
        table, more = _holdout(table, cfg, copies, rngs["split"])
        ops += more

    table = table.sort_values(["_part", "row"], kind="stable")                  # 8 geometry
    h, w, c = _target_geometry(parents, set(table["_part"]), cfg)
    ops.append({"op": "geometry", "height": h, "width": w, "channels": c, "polarity": cfg.polarity,
                "rows": int(len(table))})
    result, final_vocab = _final_table(table, vocab)
    meta = {
        "parents": [{"name": m.name, "path": str(m.path.resolve()), "checksum": m.checksum,
                     "rows": len(m)} for m in parents],
        "operations": ops,
        "seed": int(cfg.seed),
        "config": cfg.to_dict(),
        "compose_order": list(ORDER),
    }
    chunks = _converted_chunks(table, parents, (h, w, c), cfg.polarity)
    try:
        manifest = write_manifest_chunks(Path(out), result, chunks, (h, w, c), meta,
                                         classes=final_vocab)
    except OSError as e:
        raise CompositionError(f"Cannot write the composed manifest {out} ({e.strerror or e}); "
                               "choose a writable path with -o.") from e
    log(f"Composed {manifest.path} ({len(manifest)} images, {h}x{w}x{c}) from "
        f"{', '.join(m.name for m in parents)}")
    return manifest


def _converted_chunks(table: pd.DataFrame, parents: Sequence[Manifest],
                      shape: tuple[int, int, int], polarity: str) -> Iterator[np.ndarray]:
    """The selected images in table order, converted to ``shape`` a chunk at a time, so
    that memory holds one chunk, not the output."""
    h, w, c = shape
    for i, m in enumerate(parents):
        rows = table.loc[table["_part"] == i, "row"].to_numpy()
        step = chunk_rows((max(h, m.geometry.height), max(w, m.geometry.width), max(c, 3)))
        if not len(rows):
            continue
        _ = m.pixels  # opens and checks the store (an error that says what to do)
        pixels = StoreReader(m.pixels_path)  # read a chunk at a time, its pages not kept
        for s in range(0, len(rows), step):
            yield _convert(pixels[rows[s:s + step]], h, w, c, polarity)


def _final_table(table: pd.DataFrame, vocab: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The composed manifest's rows (sha256 and row are filled as the pixels are written)
    and its vocabulary: the classes present, labels renumbered in vocabulary order."""
    result = table[[c for c in COLUMNS if c not in ("sha256", "row")] + ["parent"]].copy()
    if result["id"].duplicated().any():
        result["id"] = result["parent"] + "/" + result["id"]
    present = set(result["class_name"].unique())
    final_vocab = [v for v in vocab if v in present]
    result["label"] = result["class_name"].map({name: i for i, name in enumerate(final_vocab)})
    return result, final_vocab


def rebuild(manifest_path: str | os.PathLike, out: str | os.PathLike, *,
            parents: Sequence[str | os.PathLike] | None = None) -> Manifest:
    """Re-create a composed manifest from its recorded parents and parameters.

    The parents are read from the paths in the sidecar (or ``parents``, in the same order,
    when they have moved) and must have the recorded checksums. The result has the same rows
    and bit-identical pixels.

    Raises:
        CompositionError: the manifest was not composed (it records no parents).
        ChecksumMismatch: a parent's content differs from what was recorded.
    """
    m = read_manifest(manifest_path)
    recorded = m.meta.get("parents") or []
    if not recorded or "config" not in m.meta:
        raise CompositionError(f"{m.path} was not written by compose (its sidecar {m.sidecar_path.name} "
                               "records no parents), so there is nothing to rebuild it from.")
    paths = list(parents) if parents is not None else [p["path"] for p in recorded]
    if len(paths) != len(recorded):
        raise CompositionError(f"{m.path} records {len(recorded)} parents but {len(paths)} parent path(s) "
                               "were given; pass one per parent, in the recorded order.")
    opened = []
    for p, rec in zip(paths, recorded):
        parent = read_manifest(p)
        if parent.checksum != rec["checksum"]:
            raise ChecksumMismatch(
                f"Parent {p} has checksum {parent.checksum[:12]}… but {m.sidecar_path.name} recorded "
                f"{rec['checksum'][:12]}…; it is not the manifest {m.name} was composed from.")
        opened.append(parent)
    return compose(opened, out, config=ComposeConfig.from_dict(m.meta["config"]))
