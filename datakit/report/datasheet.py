"""The "Composition" section of a Datasheet for Datasets (Gebru et al. 2018), filled in from a
manifest: what the instances are, how many of each kind, whether the set is a sample of a
larger one, labels, missing information, splits, duplicates and leakage, external sources.

Answers are plain sentences built from the table and the sidecar; nothing is guessed that
the manifest does not record (questions datakit cannot answer say so).
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from datakit.manifest.stats import balance


def _counts(series: pd.Series) -> str:
    vc = series.value_counts()
    return ", ".join(f"{k}: {v:,}" for k, v in vc.items())


def composition_facts(manifest, train: pd.DataFrame) -> dict[str, Any]:
    """Shares and balance of the training rows, as small tables for the report."""
    n = max(1, len(train))
    parts = []
    for col in ("domain", "dataset", "subset", "split"):
        vc = train[col].value_counts()
        parts.append({"column": col, "rows": [(k, int(v), v / n) for k, v in vc.items()]})
    counts = train["class_name"].value_counts()
    vocab = list(manifest.vocabulary)
    full = {c: int(counts.get(c, 0)) for c in vocab}
    return {
        "images": int(len(train)), "all_images": int(len(manifest.table)),
        "parts": parts, "balance": balance(full),
        "missing": [c for c, v in full.items() if v == 0],
        "history": _history(manifest.meta),
    }


def _history(meta: dict[str, Any]) -> list[dict[str, str]]:
    """Operations recorded in the sidecar, oldest first, as {op, params} strings."""
    out = []
    for op in meta.get("operations") or []:
        if isinstance(op, dict):
            params = ", ".join(f"{k}={v}" for k, v in op.items() if k != "op")
            out.append({"op": str(op.get("op", "?")), "params": params})
        else:
            out.append({"op": str(op), "params": ""})
    return out


def _duplicates(table: pd.DataFrame) -> tuple[int, int]:
    """(exact duplicate rows beyond the first copy, hashes present in more than one split)."""
    dups = int(table["sha256"].duplicated().sum())
    splits = table.groupby("sha256")["split"].nunique()
    return dups, int((splits > 1).sum())


def datasheet(manifest) -> list[dict[str, str]]:
    """The Composition questions of a datasheet with answers from ``manifest``."""
    t = manifest.table
    meta = manifest.meta
    g = manifest.geometry
    vocab = list(manifest.vocabulary)
    ops = [o for o in meta.get("operations") or [] if isinstance(o, dict)]
    sampled = [o for o in ops if o.get("op") != "ingest"]
    parents = meta.get("parents") or []
    skipped = meta.get("skipped") or []
    dups, leaked = _duplicates(t)
    stats = meta.get("stats") or {}
    ow, oh = t["orig_width"], t["orig_height"]

    if sampled:
        sample = (f"Yes: composed from {len(parents)} parent manifest(s) by "
                  + "; ".join(str(o.get("op")) for o in sampled)
                  + " (parameters in the composition history above).")
    else:
        sample = ("No sampling by datakit: the manifest holds every readable image of "
                  f"{_counts(t['dataset'] + '/' + t['subset'])} as ingested")
        sample += f", minus {len(skipped)} skipped file(s)." if skipped else "."
    missing = stats.get("missing_classes") or [c for c in vocab if c not in set(t["class_name"])]
    miss = []
    if missing:
        miss.append(f"{len(missing)} class(es) of the vocabulary have no images: "
                    f"{', '.join(map(str, missing[:20]))}.")
    if skipped:
        miss.append(f"{len(skipped)} source file(s) were skipped as unreadable "
                    "(listed with reasons in the sidecar).")
    inputs = meta.get("inputs") or []
    return [
        {"q": "What do the instances represent?",
         "a": f"Images of single characters from {len(vocab)} classes "
              f"({', '.join(map(str, vocab[:12]))}{', …' if len(vocab) > 12 else ''}); "
              f"domains: {_counts(t['domain'])}."},
        {"q": "How many instances are there in total (of each type)?",
         "a": f"{len(t):,} images. By dataset/subset: {_counts(t['dataset'] + '/' + t['subset'])}."},
        {"q": "Is it a sample of instances from a larger set?", "a": sample},
        {"q": "What data does each instance consist of?",
         "a": f"{g.height}×{g.width}×{g.channels} uint8 pixels in the store, resized from "
              f"originals of {int(ow.min())}–{int(ow.max())} × {int(oh.min())}–{int(oh.max())} "
              f"pixels (modes: {', '.join(sorted(set(t['orig_mode'])))}), plus the source "
              "location of each image."},
        {"q": "Is there a label associated with each instance?",
         "a": f"Yes: the character class (label 0–{len(vocab) - 1}, class_name)."},
        {"q": "Is any information missing from individual instances?",
         "a": " ".join(miss) if miss else "No missing classes and no skipped files recorded."},
        {"q": "Are there recommended data splits?",
         "a": f"Splits present: {_counts(t['split'])}. The trainer uses every split but "
              "'test'; the audit uses 'test' as held-out real data."},
        {"q": "Are there errors, sources of noise, or redundancies?",
         "a": f"{dups:,} exact duplicate image(s) (same pixel hash) beyond their first copy; "
              f"{leaked:,} image(s) appear in more than one split. Label noise is not measured."},
        {"q": "Is the dataset self-contained, or does it link to external resources?",
         "a": f"Self-contained pixel store; built from {len(inputs)} input file(s)"
              + (f" ({', '.join(str(i.get('path')) for i in inputs[:3] if isinstance(i, dict))})"
                 if inputs else "") + " recorded with checksums in the sidecar."},
        {"q": "Does it contain confidential or offensive data, or identify people?",
         "a": "Not assessed by datakit: character glyphs rarely do, but scene crops and "
              "handwriting scans should be checked by a person."},
    ]
