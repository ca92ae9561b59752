"""Duplicates: exact (same pixel sha256) and near: perceptual hashes within a small Hamming radius,
confirmed by thumbnail correlation, in memory linear in the number of images and bounded work per hash.

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

The default radius (:data:`NEAR_RADIUS`) comes from ``bench/near_duplicates`` (docs/manifests-and-curation.md).
"""
from __future__ import annotations

import math
from typing import Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from datakit.manifest.model import pixel_sha256

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


#: Side of the low-frequency DCT block the perceptual hash keeps (8×8 -> 63 bits without DC).
HASH_SIDE = 8

#: Side of the intermediate image the pHash conceptually resizes to before its DCT.
HASH_RESIZE = 32

#: Side of the thumbnails that confirm a near-duplicate, and the correlation they need.
THUMB_SIDE = 32
NEAR_THRESHOLD = 0.97


# ---------------------------------------------------------------------------------------
# perceptual hash
# ---------------------------------------------------------------------------------------
def _area_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Linear map that resizes a length-``n_in`` signal to ``n_out`` by area averaging."""
    m = np.zeros((n_out, n_in), dtype=np.float64)
    scale = n_in / n_out
    for i in range(n_out):
        lo, hi = i * scale, (i + 1) * scale
        for j in range(int(math.floor(lo)), min(n_in, int(math.ceil(hi)))):
            m[i, j] = max(0.0, min(hi, j + 1) - max(lo, j))
    return m / m.sum(axis=1, keepdims=True)


def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix (rows are frequencies)."""
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    d = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    d[0] /= np.sqrt(2.0)
    return d


def _hash_operators(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    # Resize-to-32 then DCT is linear, so both fold into one (8×H) and one (W×8) matrix:
    # low_freq = A @ image @ B for every image at once.
    dct = _dct_matrix(HASH_RESIZE)[:HASH_SIDE]
    a = dct @ _area_matrix(HASH_RESIZE, height)
    b = (dct @ _area_matrix(HASH_RESIZE, width)).T
    return a.astype(np.float32), b.astype(np.float32)


def grey_images(images: np.ndarray) -> np.ndarray:
    """N×H×W float32 grey (channel mean) of N×H×W×C images.

    Summed channel by channel: numpy's mean over a last axis of length 3 is ten times slower.
    """
    grey = images[..., 0].astype(np.float32)
    for ch in range(1, images.shape[3]):
        grey += images[..., ch]
    if images.shape[3] > 1:
        grey *= np.float32(1.0 / images.shape[3])
    return grey


def perceptual_hash(pixels: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """DCT perceptual hash (pHash) of N×H×W×C uint8 images, as N uint64 values.

    Each image is taken to grey, area-resized to 32×32, DCT-transformed; the 63 lowest
    non-DC frequencies (an 8×8 block) are compared to their median, one bit each.
    Images that look the same (re-encoded, slightly blurred or rescaled) get the same
    hash. Constant images (no structure) all hash to 0.
    """
    n, h, w, c = pixels.shape
    a, b = _hash_operators(h, w)
    weights = (np.uint64(1) << np.arange(HASH_SIDE * HASH_SIDE - 1, dtype=np.uint64))
    out = np.empty(n, dtype=np.uint64)
    for start in range(0, n, chunk):
        block = np.asarray(pixels[start:start + chunk])
        grey = grey_images(block)
        coeffs = np.matmul(a, np.matmul(grey, b)).reshape(len(grey), -1)[:, 1:]  # drop DC
        # Round away float noise: frequencies that are exactly zero in theory (flat regions,
        # a brightness shift) must tie with each other the same way in every copy.
        coeffs = np.round(coeffs, 1)
        bits = coeffs > np.median(coeffs, axis=1, keepdims=True)
        out[start:start + chunk] = bits.astype(np.uint64) @ weights
    return out


def thumbnails(pixels: np.ndarray, side: int = THUMB_SIDE, rows: np.ndarray | None = None,
               chunk: int = 2048) -> np.ndarray:
    """Grey ``side``×``side`` area-resized images, flattened, zero-mean and unit-norm (N×side²).

    Their dot product is the correlation of two images: brightness- and contrast-free.
    Flat images (no structure) give a zero vector. ``rows`` selects images of ``pixels``
    (read a chunk at a time, so a memory-mapped store is never copied whole).
    """
    _, h, w, c = pixels.shape
    rows = np.arange(len(pixels)) if rows is None else np.asarray(rows)
    a = _area_matrix(side, h).astype(np.float32)
    b = _area_matrix(side, w).astype(np.float32).T
    out = np.zeros((len(rows), side * side), dtype=np.float32)
    for s in range(0, len(rows), chunk):
        grey = grey_images(np.asarray(pixels[rows[s:s + chunk]]))
        t = np.matmul(a, np.matmul(grey, b)).reshape(len(grey), -1)
        t -= t.mean(axis=1, keepdims=True)
        norm = np.linalg.norm(t, axis=1, keepdims=True)
        np.divide(t, norm, out=out[s:s + chunk], where=norm > 1e-6)
    return out


# ---------------------------------------------------------------------------------------
# duplicates and leakage
# ---------------------------------------------------------------------------------------
def duplicate_groups(keys: pd.Series | np.ndarray) -> np.ndarray:
    """Group number per row for rows sharing a key (-1 for rows whose key is unique)."""
    codes, _ = pd.factorize(pd.Series(keys), sort=False)
    sizes = np.bincount(codes)
    return np.where(sizes[codes] > 1, codes, -1)


def near_duplicate_groups(pixels: np.ndarray, hashes: np.ndarray | None = None,
                          threshold: float = NEAR_THRESHOLD, *, sha256: Sequence[str] | None = None,
                          radius: int = NEAR_RADIUS) -> np.ndarray:
    """Group number per image for near-duplicates (-1 when an image has none).

    Candidates are images whose perceptual hashes differ in at most ``radius`` bits; they
    are confirmed when their 32×32 grey thumbnails correlate at ``threshold`` or more (so
    different handwritten "1"s that happen to share a coarse hash are not called
    duplicates). See :mod:`datakit.near_duplicates`: memory stays linear in the number of
    images, even when many of them are identical.
    """
    hashes = perceptual_hash(pixels) if hashes is None else hashes
    keys = sha256 if sha256 is not None else pixel_sha256(np.asarray(pixels))
    return near_groups(hashes, keys, lambda rows: thumbnails(pixels, rows=rows, chunk=512),
                       radius=radius, threshold=threshold)


def linked_groups(exact: np.ndarray, near: np.ndarray) -> np.ndarray:
    """Groups of images that are exact or near copies of each other (-1: no copy at all).

    Near groups already hold their exact copies unless the image is flat (no structure);
    those fall back to their exact group.
    """
    offset = int(near.max()) + 1 if len(near) else 0
    return np.where(near >= 0, near, np.where(exact >= 0, exact + offset, -1))
