"""Near-duplicate search: perceptual hashes within a small Hamming radius, confirmed by
thumbnail correlation, in memory linear in the number of images.

1. Identical pixels (same sha256) are collapsed to one representative first: they are
   exact duplicates already, so a group of 200,000 identical images costs one row, not
   a 200,000² comparison.
2. Candidate pairs: representatives whose 63-bit pHashes differ in at most ``radius``
   bits. The hash is cut into ``radius + 1`` bands; by the pigeonhole principle two hashes
   within ``radius`` bits agree exactly on at least one band, so only rows sharing a band
   value are compared (never all n² pairs), and each pair is kept only if its full
   Hamming distance is within the radius.
3. Confirmation (as before): the pair's 32×32 grey thumbnails correlate at ``threshold``
   or more. Groups are the connected components of confirmed pairs; identical copies of a
   structured image join their representative's group (flat images, whose thumbnails are
   zero, never do: they have no structure to compare).

The default radius (:data:`NEAR_RADIUS`) comes from ``bench/near_duplicates`` (README).
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import pandas as pd

#: Bits of the pHash used (an 8×8 DCT block without its DC term).
HASH_BITS = 63
#: Default Hamming radius of candidate pairs (see ``bench/near_duplicates``).
NEAR_RADIUS = 2
#: Pairs compared per vectorised step: bounds the memory of the search.
_PAIR_BLOCK = 1 << 20
_SMALL_BUCKET = 64  # buckets up to this size are paired by vectorised offsets


def popcount(x: np.ndarray) -> np.ndarray:
    """Number of set bits of each uint64."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x).astype(np.int64)
    bytes_ = x.astype(np.uint64).view(np.uint8).reshape(len(x), 8)
    return np.unpackbits(bytes_, axis=1).sum(1).astype(np.int64)


def bands(radius: int, bits: int = HASH_BITS) -> list[tuple[int, int]]:
    """``radius + 1`` (shift, width) bit bands that together cover the hash."""
    n = radius + 1
    edges = np.linspace(0, bits, n + 1).round().astype(int)
    return [(int(a), int(b - a)) for a, b in zip(edges[:-1], edges[1:])]


def _bucket_pairs(keys: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """All index pairs (i, j), i != j, with ``keys[i] == keys[j]``, in blocks of bounded size."""
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]])
    sizes = np.diff(np.r_[starts, len(sk)])
    size_of = np.repeat(sizes, sizes)
    small = size_of <= _SMALL_BUCKET
    # Small buckets (nearly all): member k with member k+d, one vectorised step per offset d.
    s_order, s_keys = order[small], sk[small]
    for d in range(1, _SMALL_BUCKET):
        if d >= len(s_keys):
            break
        same = s_keys[:-d] == s_keys[d:]
        if not same.any():
            break
        yield s_order[:-d][same], s_order[d:][same]
    # Large buckets: blocks of rows against the members after them (memory: block × size).
    for start, size in zip(starts[sizes > _SMALL_BUCKET], sizes[sizes > _SMALL_BUCKET]):
        members = order[start:start + size]
        step = max(1, _PAIR_BLOCK // size)
        for s in range(0, size - 1, step):
            i_local = np.arange(s, min(size - 1, s + step))
            counts = size - 1 - i_local
            i = np.repeat(i_local, counts)
            j = np.arange(len(i)) - np.repeat(np.cumsum(counts) - counts, counts) + i + 1
            yield members[i], members[j]


def candidate_pairs(hashes: np.ndarray, radius: int = NEAR_RADIUS) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i < j) of ``hashes`` within ``radius`` differing bits (each pair once)."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    n = len(hashes)
    found: list[np.ndarray] = []
    for shift, width in bands(radius):
        key = (hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)
        for i, j in _bucket_pairs(key):
            close = popcount(hashes[i] ^ hashes[j]) <= radius
            a, b = np.minimum(i[close], j[close]), np.maximum(i[close], j[close])
            found.append(a.astype(np.int64) * n + b)
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    codes = np.unique(np.concatenate(found))
    return codes // n, codes % n


def near_groups(hashes: np.ndarray, exact_keys: np.ndarray | pd.Series,
                thumbs_of: Callable[[np.ndarray], np.ndarray], *, radius: int = NEAR_RADIUS,
                threshold: float = 0.97) -> np.ndarray:
    """Group number per row for near-duplicates (-1 when a row has no near copy).

    Args:
        hashes: the rows' 63-bit perceptual hashes (uint64).
        exact_keys: the rows' exact-duplicate keys (pixel sha256).
        thumbs_of: ``thumbs_of(rows)`` -> unit-norm zero-mean thumbnails of those rows
            (sorted row numbers), one per row; called once, on representatives only.
        radius: candidate pairs differ in at most this many hash bits.
        threshold: thumbnail correlation that confirms a candidate pair.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(hashes)
    out = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return out
    code, _ = pd.factorize(pd.Series(np.asarray(exact_keys)), sort=False)
    reps = np.flatnonzero(~pd.Series(code).duplicated().to_numpy())  # first row of each code
    copies = np.bincount(code)                                       # rows per code
    a, b = candidate_pairs(np.asarray(hashes, dtype=np.uint64)[reps], radius)
    need = np.unique(np.concatenate([a, b, np.flatnonzero(copies > 1)]))
    if len(need) == 0:
        return out
    thumbs = np.asarray(thumbs_of(reps[need]), dtype=np.float32)
    slot = np.full(len(reps), -1, dtype=np.int64)
    slot[need] = np.arange(len(need))
    keep_a, keep_b = [], []
    for s in range(0, len(a), _PAIR_BLOCK):
        i, j = a[s:s + _PAIR_BLOCK], b[s:s + _PAIR_BLOCK]
        hit = np.einsum("ij,ij->i", thumbs[slot[i]], thumbs[slot[j]]) >= threshold
        keep_a.append(i[hit])
        keep_b.append(j[hit])
    a = np.concatenate(keep_a) if keep_a else a[:0]
    b = np.concatenate(keep_b) if keep_b else b[:0]
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(len(reps), len(reps)))
    _, component = connected_components(graph, directed=False)
    structured = np.zeros(len(reps), dtype=bool)
    structured[need] = np.linalg.norm(thumbs, axis=1) > 0.5  # zero vector = flat image
    linked = np.bincount(component, minlength=len(reps)) > 1
    in_group = linked[component] | ((copies > 1) & structured)
    group_of_rep = np.where(in_group, component, -1)
    return group_of_rep[code]
