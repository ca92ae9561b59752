"""Planted failures: generated sets built from real images, each with one known defect.

A "generator" here is a pool of real images in neither split of the audited manifest
(so it never saw the training set): drawn as is, it is a perfect, healthy generator.
Each function below takes such a draw and plants one defect in it — one class collapsed
to one image, one class drawn from 2 of its 5 modes, a class drawn as another, a class
suppressed or amplified, blurred or noisy, copies of training images, one domain only —
so the audit's verdict can be checked against a known truth (``bench/verdicts``).

Every function is pure given its ``rng``; images are N×H×W×C uint8, labels int64
conditioning labels (the contract of ``generated.npz``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFilter
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from datakit.manifest.model import pixel_sha256


@dataclass
class PlantedSet:
    """A generated set with its known defect.

    Attributes:
        images / labels: what goes into ``generated.npz``.
        defect: the defect's name (``healthy`` for controls).
        classes: class names the defect concerns (empty for whole-run defects).
        description: one line saying what was planted.
        info: facts about the construction (source rows, kept modes, ...) for tests.
    """

    images: np.ndarray
    labels: np.ndarray
    defect: str
    classes: list[str] = field(default_factory=list)
    description: str = ""
    info: dict = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return self.defect == "healthy"


def unseen(pool_images: np.ndarray, known_sha256: set[str]) -> np.ndarray:
    """Mask of pool images whose pixel sha256 is not in ``known_sha256`` (the audited manifest's).

    A dataset may hold the same image twice (Chars74K renders some font digits identically);
    a pool image equal to a training image would be an "exact copy" that no model made, so
    every generator pool is drawn from the unseen images only.
    """
    return np.array([h not in known_sha256 for h in pixel_sha256(pool_images)], bool)


def class_counts(n_classes: int, per_class: int, factors: dict[int, float] | None = None) -> np.ndarray:
    """``per_class`` samples for every class, times ``factors[label]`` for the chosen ones."""
    counts = np.full(n_classes, per_class, dtype=np.int64)
    for lab, f in (factors or {}).items():
        counts[lab] = max(0, int(round(per_class * f)))
    return counts


def draw(pool_labels: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pool positions: ``counts[c]`` of class c, without replacement while the pool lasts."""
    picks = []
    for lab, n in enumerate(counts):
        where = np.flatnonzero(pool_labels == lab)
        if n and not len(where):
            raise ValueError(f"The pool has no image of class {lab}.")
        picks.append(rng.choice(where, n, replace=n > len(where)) if n else np.zeros(0, np.int64))
    return np.concatenate(picks).astype(np.int64)


def healthy(pool_images: np.ndarray, pool_labels: np.ndarray, counts: np.ndarray,
            rng: np.random.Generator, description: str = "held-out real images") -> PlantedSet:
    """Real images of the pool, ``counts[c]`` per class: a perfect generator."""
    pos = draw(pool_labels, counts, rng)
    return PlantedSet(pool_images[pos], pool_labels[pos].astype(np.int64), "healthy", [],
                      description, {"pool_positions": pos})


def _with_class(base: PlantedSet, label: int, images: np.ndarray, defect: str, name: str,
                description: str, **info) -> PlantedSet:
    # the base set with class `label`'s images replaced (its count and labels unchanged)
    out = base.images.copy()
    out[base.labels == label] = images
    return PlantedSet(out, base.labels.copy(), defect, [name], description, {**base.info, **info})


def total_collapse(base: PlantedSet, label: int, name: str, rng: np.random.Generator) -> PlantedSet:
    """Every sample of class ``label`` is one and the same image (one of its own samples)."""
    rows = np.flatnonzero(base.labels == label)
    one = base.images[rng.choice(rows)]
    return _with_class(base, label, np.repeat(one[None], len(rows), 0), "total_collapse", name,
                       f"class {name}: one image repeated {len(rows)} times")


def jitter(image: np.ndarray, n: int, rng: np.random.Generator, shift: int = 1,
           noise: float = 6.0) -> np.ndarray:
    """``n`` copies of ``image`` each shifted by up to ``shift`` px and with Gaussian noise σ=``noise``."""
    out = np.empty((n, *image.shape), np.uint8)
    for i in range(n):
        im = np.roll(image.astype(np.float32), tuple(rng.integers(-shift, shift + 1, 2)), axis=(0, 1))
        out[i] = np.clip(im + rng.normal(0, noise, im.shape), 0, 255)
    return out


def one_style(base: PlantedSet, label: int, name: str, rng: np.random.Generator,
              shift: int = 1, noise: float = 6.0) -> PlantedSet:
    """Partial collapse: every sample of the class is one real image with small jitter."""
    rows = np.flatnonzero(base.labels == label)
    src = base.images[rng.choice(rows)]
    return _with_class(base, label, jitter(src, len(rows), rng, shift, noise), "one_style", name,
                       f"class {name}: one real image with ±{shift}px shifts and noise σ={noise:g}",
                       source_image=src)


def pixel_modes(images: np.ndarray, n_modes: int = 5, seed: int = 0) -> np.ndarray:
    """Mode of each image: k-means (``n_modes`` clusters) on 4×-downsampled pixels."""
    x = images.astype(np.float32)
    h, w = x.shape[1] // 4 * 4, x.shape[2] // 4 * 4
    x = x[:, :h, :w].reshape(len(x), h // 4, 4, w // 4, 4, -1).mean((2, 4)).reshape(len(x), -1)
    with threadpool_limits(limits=1, user_api="openmp"):
        return KMeans(n_clusters=n_modes, n_init=3, random_state=seed).fit_predict(x)


def some_modes(base: PlantedSet, label: int, name: str, pool_images: np.ndarray,
               pool_labels: np.ndarray, rng: np.random.Generator, n_modes: int = 5,
               keep: int = 2) -> PlantedSet:
    """The class's samples come from only ``keep`` of its ``n_modes`` pixel-space modes.

    The modes are k-means clusters of the pool's images of the class; the ``keep``
    largest are kept (so the defect is missing modes, not missing a tiny cluster).
    """
    where = np.flatnonzero(pool_labels == label)
    modes = pixel_modes(pool_images[where], n_modes, seed=int(rng.integers(1 << 31)))
    kept = np.argsort(-np.bincount(modes, minlength=n_modes), kind="stable")[:keep]
    source = where[np.isin(modes, kept)]
    n = int((base.labels == label).sum())
    pos = rng.choice(source, n, replace=n > len(source))
    return _with_class(base, label, pool_images[pos], "some_modes", name,
                       f"class {name}: samples from {keep} of its {n_modes} pixel modes",
                       mode_of_pool={int(p): int(m) for p, m in zip(where, modes)},
                       kept_modes=[int(k) for k in kept], class_positions=pos)


def drawn_as(base: PlantedSet, label: int, name: str, other: int, other_name: str,
             pool_images: np.ndarray, pool_labels: np.ndarray, rng: np.random.Generator) -> PlantedSet:
    """Samples conditioned on ``label`` are real images of class ``other``."""
    n = int((base.labels == label).sum())
    pos = draw(pool_labels, np.bincount([other], minlength=other + 1) * n, rng)
    return _with_class(base, label, pool_images[pos], "drawn_as", name,
                       f"class {name}: drawn as class {other_name}", class_positions=pos)


def degrade(base: PlantedSet, label: int, name: str, kind: str, strength: float) -> PlantedSet:
    """Blur (Gaussian, radius ``strength`` px) or noise (Gaussian, σ=``strength``) on one class."""
    rows = np.flatnonzero(base.labels == label)
    if kind == "blur":
        out = np.stack([np.asarray(Image.fromarray(im.squeeze(-1) if im.shape[-1] == 1 else im)
                                   .filter(ImageFilter.GaussianBlur(strength))).reshape(im.shape)
                        for im in base.images[rows]])
    elif kind == "noise":
        rng = np.random.default_rng(0)
        out = np.clip(base.images[rows] + rng.normal(0, strength, base.images[rows].shape), 0, 255)
    else:
        raise ValueError(f"Unknown degradation {kind!r}; use blur or noise.")
    return _with_class(base, label, out.astype(np.uint8), kind, name,
                       f"class {name}: {kind} of strength {strength:g}")


def reshare(pool_images: np.ndarray, pool_labels: np.ndarray, per_class: int, label: int, name: str,
            factor: float, n_classes: int, rng: np.random.Generator) -> PlantedSet:
    """Healthy images, but class ``label`` gets ``factor`` times its share of samples."""
    counts = class_counts(n_classes, per_class, {label: factor})
    s = healthy(pool_images, pool_labels, counts, rng)
    defect = "suppressed" if factor < 1 else "amplified"
    return PlantedSet(s.images, s.labels, defect, [name],
                      f"class {name}: {factor:g}× its fair share ({counts[label]} of {counts.sum()})", s.info)


def copies(train_images: np.ndarray, train_labels: np.ndarray, counts: np.ndarray,
           rng: np.random.Generator) -> PlantedSet:
    """Exact pixel copies of training images, ``counts[c]`` per class."""
    pos = draw(train_labels, counts, rng)
    return PlantedSet(train_images[pos].copy(), train_labels[pos].astype(np.int64), "copies", [],
                      "every sample is a byte-exact copy of a training image", {"train_positions": pos})


def one_domain(pool_images: np.ndarray, pool_labels: np.ndarray, pool_domains: np.ndarray,
               domain: str, counts: np.ndarray, rng: np.random.Generator) -> PlantedSet:
    """Domain drift: real images of one domain only (e.g. only fonts from a wild+synthetic mix)."""
    keep = np.flatnonzero(pool_domains == domain)
    pos = keep[draw(pool_labels[keep], counts, rng)]
    return PlantedSet(pool_images[pos], pool_labels[pos].astype(np.int64), "domain_drift", [],
                      f"only {domain} images from a mixed training set", {"pool_positions": pos})
