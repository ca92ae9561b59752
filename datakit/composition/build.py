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
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd

from datakit._core.names import check_name
from datakit._core.progress import log
from datakit.composition.config import ComposeConfig
from datakit.composition.geometry import convert, target_geometry
from datakit.composition.selection import (
    copy_groups,
    dedupe,
    holdout,
    mix,
    select,
    skew,
    subsample,
    union,
    vocabulary,
)
from datakit.errors import ChecksumMismatch, CompositionError
from datakit.manifest.model import COLUMNS, Manifest, check_pixels, manifest_paths
from datakit.manifest.read import read_manifest
from datakit.manifest.store import StoreReader, chunk_rows
from datakit.manifest.write import write_manifest_chunks

#: The fixed order of the operations (each one's random generator is spawned in this order).
ORDER = ("select", "vocabulary", "dedupe", "mix", "skew", "subsample", "split", "geometry")


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

    table, ops = select(union(parents), cfg, parents)                        # 1 select
    vocab = vocabulary(list(set(table["class_name"])))                        # 2 vocabulary
    ops.append({"op": "vocabulary", "classes": vocab, "rows": int(len(table))})
    need_hash = cfg.dedupe == "near" or cfg.holdout is not None
    copies = copy_groups(table, parents) if need_hash else None
    if cfg.dedupe:                                                              # 3 dedupe
        table, copies, more = dedupe(table, cfg, copies)
        ops += more
    if cfg.weights or cfg.fraction:                                             # 4 mix
        before = table.index
        table, more = mix(table, cfg, rngs["mix"])
        copies = copies[before.get_indexer(table.index)] if copies is not None else None
        ops += more
    if cfg.class_counts or cfg.skew or cfg.max_per_class:                       # 5 skew
        before = table.index
        table, more = skew(table, cfg, vocab, rngs["skew"])
        copies = copies[before.get_indexer(table.index)] if copies is not None else None
        ops += more
    if cfg.size:                                                                # 6 subsample
        before = table.index
        table, more = subsample(table, cfg, rngs["subsample"])
        copies = copies[before.get_indexer(table.index)] if copies is not None else None
        ops += more
    if len(table) == 0:
        raise CompositionError("The composition is empty: no images are left after the operations.")
    if cfg.holdout is not None:                                                 # 7 split
        table, more = holdout(table, cfg, copies, rngs["split"])
        ops += more

    table = table.sort_values(["_part", "row"], kind="stable")                  # 8 geometry
    h, w, c = target_geometry(parents, set(table["_part"]), cfg)
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
        part = table.loc[table["_part"] == i]
        rows, sha256, ids = (part[k].to_numpy() for k in ("row", "sha256", "id"))
        step = chunk_rows((max(h, m.geometry.height), max(w, m.geometry.width), max(c, 3)))
        if not len(rows):
            continue
        _ = m.pixels  # opens and checks the store (an error that says what to do)
        pixels = StoreReader(m.pixels_path)  # read a chunk at a time, its pages not kept
        for s in range(0, len(rows), step):
            raw = pixels[rows[s:s + step]]
            # Every pixel is read here anyway: check each row against its sha256, so that a
            # changed parent is refused rather than laundered into a manifest that verifies.
            check_pixels(m, raw, sha256[s:s + step], ids[s:s + step])
            yield convert(raw, h, w, c, polarity)


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
