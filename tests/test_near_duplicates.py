"""Near-duplicates within a Hamming radius of the pHash, in memory linear in the images."""
from __future__ import annotations

import time
import tracemalloc

import numpy as np

from datakit.manifest.duplicates import (
    bands,
    candidate_pairs,
    near_duplicate_groups,
    perceptual_hash,
    popcount,
)


def _brute_force_pairs(hashes: np.ndarray, radius: int) -> set[tuple[int, int]]:
    n = len(hashes)
    d = popcount((hashes[:, None] ^ hashes[None, :]).reshape(-1)).reshape(n, n)
    i, j = np.nonzero(np.triu(d <= radius, 1))
    return set(zip(i.tolist(), j.tolist()))


def test_bands_cover_the_hash_and_pairs_match_brute_force():
    assert bands(2) == [(0, 21), (21, 21), (42, 21)]
    rng = np.random.default_rng(0)
    base = rng.integers(0, 1 << 63, 40, dtype=np.uint64)
    # many hashes a few bits from a few bases, plus 150 identical ones (a large bucket)
    flips = np.uint64(1) << rng.integers(0, 63, (300, 3)).astype(np.uint64)
    near = base[rng.integers(0, 40, 300)] ^ np.where(rng.random((300, 3)) < 0.5, flips, 0).astype(
        np.uint64).sum(1, dtype=np.uint64)
    hashes = np.concatenate([base, near, np.full(150, base[0])]).astype(np.uint64)
    for radius in (0, 1, 2, 3):
        a, b = candidate_pairs(hashes, radius)
        assert set(zip(a.tolist(), b.tolist())) == _brute_force_pairs(hashes, radius), radius


def _glyphs(n: int, seed: int = 0) -> np.ndarray:
    """Distinct structured 32×32 images (random blobs), so correlation is meaningful."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32]
    out = np.zeros((n, 32, 32, 1), np.uint8)
    for k in range(n):
        img = np.zeros((32, 32))
        for _ in range(4):
            cy, cx, r = rng.uniform(6, 26), rng.uniform(6, 26), rng.uniform(2, 6)
            img += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        out[k, ..., 0] = np.clip(img / img.max() * 230, 0, 255).astype(np.uint8)
    return out


def _digits(n: int) -> np.ndarray:
    """scikit-learn's 8×8 digits, upscaled to 32×32×1 (distinct handwritten glyphs)."""
    from sklearn.datasets import load_digits
    d = load_digits().images[:n]
    return (np.kron(d, np.ones((4, 4))) * 15).astype(np.uint8)[..., None]


def _with_edited_copies(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` digits, then a noisy copy of each, then a brighter copy of each."""
    originals = _digits(n)
    rng = np.random.default_rng(seed)
    noisy = np.clip(originals.astype(int) + rng.normal(0, 6, originals.shape), 0, 255).astype(np.uint8)
    brighter = np.clip(originals.astype(int) + 20, 0, 255).astype(np.uint8)
    return originals, np.concatenate([originals, noisy, brighter])


def test_edited_copies_are_found_and_distinct_images_are_not():
    originals, pixels = _with_edited_copies(200, seed=1)
    groups = near_duplicate_groups(pixels)
    n = len(originals)
    found = [(groups[k] >= 0 and groups[k] == groups[k + n] == groups[k + 2 * n]) for k in range(n)]
    assert np.mean(found) >= 0.9
    # healthy control: the originals alone have no near copies
    assert (near_duplicate_groups(originals) == -1).all()


def test_a_larger_radius_finds_copies_that_the_exact_hash_misses():
    originals = _digits(200)
    rng = np.random.default_rng(2)
    noisy = np.clip(originals.astype(int) + rng.normal(0, 6, originals.shape), 0, 255).astype(np.uint8)
    pixels = np.concatenate([originals, noisy])
    differing = popcount(perceptual_hash(originals) ^ perceptual_hash(noisy))
    assert (differing > 0).any() and (differing <= 2).any()  # the test needs such copies
    n = len(originals)
    def recall(radius):
        g = near_duplicate_groups(pixels, radius=radius)
        return np.mean([g[k] >= 0 and g[k] == g[k + n] for k in range(n)])
    assert recall(2) > recall(0)


def test_identical_flat_images_are_exact_not_near_duplicates():
    pixels = np.zeros((5, 8, 8, 1), np.uint8)
    assert (near_duplicate_groups(pixels) == -1).all()


def test_200k_identical_images_need_no_square_matrix():
    one = _glyphs(1)[:, ::4, ::4]  # 8×8
    pixels = np.broadcast_to(one, (200_000, 8, 8, 1))
    tracemalloc.start()
    start = time.process_time()
    groups = near_duplicate_groups(pixels)
    seconds = time.process_time() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert (groups == groups[0]).all() and groups[0] >= 0
    # An n×n matrix would be 40 billion cells; the search keeps a few arrays of n.
    assert peak < 400 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    assert seconds < 60


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two group labellings (-1: no group) put the same rows together."""
    if not np.array_equal(a < 0, b < 0):
        return False
    m = a >= 0
    pairs = set(zip(a[m].tolist(), b[m].tolist()))
    return len(pairs) == len(set(a[m].tolist())) == len(set(b[m].tolist()))


def test_groups_are_the_connected_components_of_close_correlating_pairs():
    """Known answer from the definition: every pair within the radius whose thumbnails
    correlate at the threshold, joined transitively (classes small enough to be exact)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from datakit.manifest.duplicates import NEAR_THRESHOLD, thumbnails
    originals, pixels = _with_edited_copies(300, seed=3)
    hashes = perceptual_hash(pixels)
    i, j = np.array(sorted(_brute_force_pairs(hashes, 2))).T
    t = thumbnails(pixels)
    hit = np.einsum("ij,ij->i", t[i], t[j]) >= NEAR_THRESHOLD
    graph = coo_matrix((np.ones(hit.sum()), (i[hit], j[hit])), shape=(len(pixels),) * 2)
    _, comp = connected_components(graph, directed=False)
    expected = np.where(np.bincount(comp)[comp] > 1, comp, -1)
    groups = near_duplicate_groups(pixels)
    assert (groups >= 0).sum() > 300  # the planted copies are there to be found
    assert _same_partition(groups, expected)


def test_a_large_hash_class_is_scanned_against_leaders_in_bounded_memory():
    """10,000 distinct images sharing one hash (more than LEADERS_ABOVE) with 500 planted
    near copies among them: every copy joins its original, no distinct image is merged, and
    no pair list is made (all the pairs of one hash would be 55 million)."""
    from datakit.manifest.duplicates import LEADERS_ABOVE, near_groups
    rng = np.random.default_rng(4)
    k, planted, d = 10_000, 500, 64
    distinct = rng.normal(size=(k, d)).astype(np.float32)
    copies = distinct[:planted] + rng.normal(0, 0.02, (planted, d)).astype(np.float32)
    thumbs = np.concatenate([distinct, copies])
    order = rng.permutation(len(thumbs))  # copies anywhere: before or after their original
    thumbs = thumbs[order]
    thumbs /= np.linalg.norm(thumbs, axis=1, keepdims=True)
    original_of = np.argsort(order)  # row of each unshuffled image
    assert k > LEADERS_ABOVE
    tracemalloc.start()
    groups = near_groups(np.full(len(thumbs), 12345, np.uint64), np.arange(len(thumbs)),
                         lambda rows: thumbs[rows], threshold=0.97)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    orig, copy = original_of[:planted], original_of[k:]
    assert (groups[orig] >= 0).all() and (groups[orig] == groups[copy]).all()
    assert (groups[original_of[planted:k]] == -1).all()  # distinct images sharing the hash
    assert len(np.unique(groups[orig])) == planted       # each pair its own group
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.0f} MiB"
