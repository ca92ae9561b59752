"""Which rows a composition keeps: class choice, union, dedupe, mix by share, skew, subsample, hold-out."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from datakit.composition.config import CLASS_SETS, SHARE_COLUMNS, ComposeConfig
from datakit.errors import CompositionError
from datakit.manifest.duplicates import (
    NEAR_THRESHOLD,
    THUMB_SIDE,
    duplicate_groups,
    linked_groups,
    near_groups,
    perceptual_hash,
    thumbnails,
)
from datakit.manifest.model import CHARS62, COLUMNS, Manifest


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
def vocabulary(names: Sequence[str]) -> list[str]:
    known = [c for c in CHARS62 if c in set(names)]
    return known + sorted(set(names) - set(CHARS62))


def _available(table: pd.DataFrame) -> str:
    counts = table["class_name"].value_counts()
    return ", ".join(f"{c}={int(counts[c])}" for c in vocabulary(list(counts.index)))


def _names(parents: Sequence[Manifest]) -> str:
    return ", ".join(m.path.name for m in parents)


def union(parents: Sequence[Manifest]) -> pd.DataFrame:
    parts = []
    for i, m in enumerate(parents):
        t = m.table[COLUMNS].copy()
        t["parent"] = m.name if sum(p.name == m.name for p in parents) == 1 else f"{m.name}#{i}"
        t["_part"] = i
        parts.append(t)
    table = pd.concat(parts, ignore_index=True)
    table["_group"] = ""
    return table


def select(table: pd.DataFrame, cfg: ComposeConfig, parents: Sequence[Manifest]) -> tuple[pd.DataFrame, list]:
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
            listing = "; ".join(f"{parents[i].name}: {' '.join(vocabulary(list(s)))}"
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


def copy_groups(table: pd.DataFrame, parents: Sequence[Manifest]) -> np.ndarray:
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


def dedupe(table: pd.DataFrame, cfg: ComposeConfig, copies: np.ndarray | None) -> tuple[pd.DataFrame, np.ndarray | None, list]:
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


def mix(table: pd.DataFrame, cfg: ComposeConfig, rng: np.random.Generator) -> tuple[pd.DataFrame, list]:
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


def skew(table: pd.DataFrame, cfg: ComposeConfig, vocab: list[str], rng: np.random.Generator) -> tuple[pd.DataFrame, list]:
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


def subsample(table: pd.DataFrame, cfg: ComposeConfig, rng: np.random.Generator) -> tuple[pd.DataFrame, list]:
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


def holdout(table: pd.DataFrame, cfg: ComposeConfig, copies: np.ndarray, rng: np.random.Generator) -> tuple[pd.DataFrame, list]:
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
