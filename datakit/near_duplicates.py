"""Near-duplicate search: perceptual hashes within a small Hamming radius, confirmed by
thumbnail correlation, in memory linear in the number of images and bounded work per hash.

1. Identical pixels (same sha256) are collapsed to one representative first: they are
   exact duplicates already, so a group of 200,000 identical images costs one row, not
   a 200,000² comparison.
2. Representatives are then grouped by hash value (a *hash class*: distinct images whose
   63-bit pHashes are equal). Candidate pairs of classes: distinct hash values that differ
   in at most ``radius`` bits. The hash is cut into ``radius + 1`` bands; by the
   pigeonhole principle two hashes within ``radius`` bits agree exactly on at least one
   band, so only values sharing a band value are compared (never all n² pairs), and each
   pair is kept only if its full Hamming distance is within the radius. Searching
   distinct values only keeps images with an identical hash from multiplying the pairs.
3. Confirmation: two representatives are linked when their hashes are in the same or in
   a candidate pair of classes and their 32×32 grey thumbnails correlate at
   ``threshold`` or more; correlations are computed block by block (matrix products of
   at most :data:`_BLOCK` rows a side), so memory never grows with the number of pairs.
   Every such pair is compared, exactly, unless a hash class holds more than
   :data:`LEADERS_ABOVE` images. Such a large class is scanned once, in row order and in
   blocks, against its *leaders*: a row that correlates with no earlier leader, nor with
   an earlier row of its block that did not either, becomes a leader (so leaders
   correlate below the threshold with each other). A pair inside the class is compared
   when its earlier row is a leader, or when both rows share a block and neither matched
   an earlier leader; a row of a neighbouring class is compared with the class's leaders
   only. A class of k rows thus costs k × (leaders + block), not k². The approximation:
   two correlating rows of a large class are linked directly only when the earlier one
   is a leader or they share a block (as above); otherwise they end up in one group
   only if a chain of links joins them, and a row of a neighbouring class that
   correlates with non-leaders only is not linked.
4. Groups are the connected components of confirmed links; identical copies of a
   structured image join their representative's group (flat images, whose thumbnails
   are zero, never do: they have no structure to compare).

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
#: Hash classes larger than this are confirmed against leaders (module docstring, step 3).
LEADERS_ABOVE = 2048
#: Thumbnails per correlation block: a block of pairs or a side of a matrix product.
_BLOCK = 1024
#: Class pairs whose row pairs are listed and compared as pairs (larger ones: products).
_SMALL_PRODUCT = 64
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
    # 1. one representative per exact key
    code, _ = pd.factorize(pd.Series(np.asarray(exact_keys)), sort=False)
    reps = np.flatnonzero(~pd.Series(code).duplicated().to_numpy())  # first row of each code
    copies = np.bincount(code)                                       # rows per code
    # 2. hash classes of representatives, and the pairs of classes within the radius
    values, cls = np.unique(np.asarray(hashes, dtype=np.uint64)[reps], return_inverse=True)
    classes = _HashClasses(cls.ravel(), len(values))
    p, q = candidate_pairs(values, radius)
    selves = np.flatnonzero(classes.size > 1)
    touched = np.zeros(len(values), dtype=bool)
    touched[np.concatenate([p, q, selves])] = True
    need = np.flatnonzero(touched[classes.cls] | (copies > 1))
    if len(need) == 0:
        return out
    # 3. confirmation by thumbnails
    thumbs = np.asarray(thumbs_of(reps[need]), dtype=np.float32)
    slot = np.full(len(reps), -1, dtype=np.int64)
    slot[need] = np.arange(len(need))
    links = _Links(thumbs, slot, threshold)
    for c in np.flatnonzero(classes.size > LEADERS_ABOVE):
        classes.leaders[int(c)] = links.leader_scan(classes.members(c))
    links.class_pairs(classes, np.r_[selves, p], np.r_[selves, q])
    a, b = links.pairs()
    # 4. connected components
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(len(reps), len(reps)))
    _, component = connected_components(graph, directed=False)
    structured = np.zeros(len(reps), dtype=bool)
    # zero vector = flat image (einsum: no n×d temporary, unlike np.linalg.norm)
    structured[need] = np.einsum("ij,ij->i", thumbs, thumbs) > 0.25
    linked = np.bincount(component, minlength=len(reps)) > 1
    in_group = linked[component] | ((copies > 1) & structured)
    group_of_rep = np.where(in_group, component, -1)
    return group_of_rep[code]


class _HashClasses:
    """Representatives grouped by hash value: members per class, leaders of large classes."""

    def __init__(self, cls: np.ndarray, count: int):
        self.cls = cls
        self.size = np.bincount(cls, minlength=count)
        self.order = np.argsort(cls, kind="stable")
        self.first = np.cumsum(self.size) - self.size
        self.leaders: dict[int, np.ndarray] = {}

    def members(self, c: int) -> np.ndarray:
        return self.order[self.first[c]:self.first[c] + self.size[c]]

    def side(self, c: int) -> np.ndarray:
        """The rows another class is compared with: the leaders of a large class."""
        return self.leaders.get(int(c), self.members(c))

    def row_pairs(self, p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every (member of p, member of q) of the class pairs; once per pair when p == q."""
        counts = self.size[p] * self.size[q]
        k = np.repeat(np.arange(len(p)), counts)
        t = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        width = self.size[q][k]
        i, j = t // width, t % width
        keep = (p[k] != q[k]) | (i < j)
        return self.order[self.first[p][k] + i][keep], self.order[self.first[q][k] + j][keep]


class _Links:
    """Confirmed links between representatives, found block by block (bounded memory)."""

    def __init__(self, thumbs: np.ndarray, slot: np.ndarray, threshold: float):
        self.thumbs, self.slot, self.threshold = thumbs, slot, threshold
        self.a: list[np.ndarray] = []
        self.b: list[np.ndarray] = []

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.a:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(self.a), np.concatenate(self.b)

    def _vectors(self, rows: np.ndarray) -> np.ndarray:
        return self.thumbs[self.slot[rows]]

    def listed(self, i: np.ndarray, j: np.ndarray) -> None:
        """Link the listed pairs (i[k], j[k]) that correlate."""
        for s in range(0, len(i), _BLOCK):
            x, y = i[s:s + _BLOCK], j[s:s + _BLOCK]
            hit = np.einsum("ij,ij->i", self._vectors(x), self._vectors(y)) >= self.threshold
            self.a.append(x[hit])
            self.b.append(y[hit])

    def product(self, rows_a: np.ndarray, rows_b: np.ndarray, same: bool = False) -> np.ndarray:
        """Link every correlating (row of a, row of b); True per row of a that was linked."""
        linked = np.zeros(len(rows_a), dtype=bool)
        for s in range(0, len(rows_a), _BLOCK):
            va = self._vectors(rows_a[s:s + _BLOCK])
            for u in range(s if same else 0, len(rows_b), _BLOCK):
                x, y = np.nonzero(va @ self._vectors(rows_b[u:u + _BLOCK]).T >= self.threshold)
                if same:  # each unordered pair once, never a row with itself
                    keep = y + u > x + s
                    x, y = x[keep], y[keep]
                self.a.append(rows_a[s + x])
                self.b.append(rows_b[u + y])
                linked[s + x] = True
        return linked

    def leader_scan(self, rows: np.ndarray) -> np.ndarray:
        """Link a large class's rows to its leaders (module docstring, step 3); the leaders."""
        leaders = np.zeros(0, dtype=np.int64)
        for s in range(0, len(rows), _BLOCK):
            block = rows[s:s + _BLOCK]
            rest = block[~self.product(block, leaders)]
            before = len(self.b)
            self.product(rest, rest, same=True)
            followers = np.concatenate(self.b[before:]) if len(self.b) > before else leaders[:0]
            leaders = np.r_[leaders, rest[~np.isin(rest, followers)]]
        return leaders

    def class_pairs(self, classes: _HashClasses, p: np.ndarray, q: np.ndarray) -> None:
        """Link the correlating rows of each class pair (p == q: within one class)."""
        big = classes.size > LEADERS_ABOVE
        work = classes.size[p] * classes.size[q]
        small = (work <= _SMALL_PRODUCT) & ~big[p] & ~big[q]
        sp, sq = p[small], q[small]
        step = max(1, _PAIR_BLOCK // _SMALL_PRODUCT)
        for s in range(0, len(sp), step):
            self.listed(*classes.row_pairs(sp[s:s + step], sq[s:s + step]))
        for c, d in zip(p[~small], q[~small]):
            if c == d and big[c]:
                continue  # linked by its leader scan
            self.product(classes.side(c), classes.side(d), same=bool(c == d))
