"""The planted-failure generators do what they claim (the verdict's tests are elsewhere)."""
from __future__ import annotations

import numpy as np
import pytest

from datakit.sources.digits import load_digits_arrays
from datakit.testing import planted


@pytest.fixture(scope="module")
def pool():
    images, labels = load_digits_arrays(16)
    return images, labels.astype(np.int64)


def _base(pool, per_class=20, seed=0):
    images, labels = pool
    return planted.healthy(images, labels, planted.class_counts(10, per_class), np.random.default_rng(seed))


def test_healthy_draws_real_images_per_class_without_repeats(pool):
    s = _base(pool)
    assert s.healthy and s.images.dtype == np.uint8 and s.labels.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(s.labels), np.full(10, 20))
    assert len(set(s.info["pool_positions"].tolist())) == 200
    np.testing.assert_array_equal(s.images, pool[0][s.info["pool_positions"]])


def test_total_collapse_repeats_one_image_of_the_class_only(pool):
    base = _base(pool)
    s = planted.total_collapse(base, 3, "3", np.random.default_rng(1))
    three = s.images[s.labels == 3]
    assert (three == three[0]).all() and any((three[0] == im).all() for im in base.images[base.labels == 3])
    np.testing.assert_array_equal(s.images[s.labels != 3], base.images[base.labels != 3])
    assert s.classes == ["3"] and not s.healthy


def test_one_style_is_one_real_image_shifted_and_noised(pool):
    base = _base(pool)
    s = planted.one_style(base, 5, "5", np.random.default_rng(2), shift=1, noise=6.0)
    src = s.info["source_image"].astype(float)
    assert any((s.info["source_image"] == im).all() for im in base.images[base.labels == 5])
    five = s.images[s.labels == 5].astype(float)
    assert len({im.tobytes() for im in s.images[s.labels == 5]}) > 1  # jittered, not identical
    shifted = [np.roll(src, (dy, dx), axis=(0, 1)) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    for im in five:  # each sample: some ±1 px shift of the source plus noise of σ≈6 (clipped)
        assert min(np.sqrt(((im - sh) ** 2).mean()) for sh in shifted) < 7.0


def test_two_of_five_draws_from_exactly_two_modes(pool):
    images, labels = pool
    base = _base(pool)
    s = planted.some_modes(base, 7, "7", images, labels, np.random.default_rng(3))
    modes = s.info["mode_of_pool"]
    assert len(set(modes.values())) == 5
    drawn = {modes[int(p)] for p in s.info["class_positions"]}
    assert drawn == set(s.info["kept_modes"]) and len(drawn) == 2
    np.testing.assert_array_equal(s.images[s.labels == 7], images[s.info["class_positions"]])


def test_drawn_as_uses_the_other_class_images(pool):
    images, labels = pool
    s = planted.drawn_as(_base(pool), 1, "1", 7, "7", images, labels, np.random.default_rng(4))
    assert (labels[s.info["class_positions"]] == 7).all()
    assert (s.labels == 1).sum() == 20


def test_reshare_changes_only_the_chosen_share(pool):
    images, labels = pool
    s = planted.reshare(images, labels, 20, 4, "4", 0.05, 10, np.random.default_rng(5))
    counts = np.bincount(s.labels, minlength=10)
    assert counts[4] == 1 and (np.delete(counts, 4) == 20).all() and s.defect == "suppressed"
    a = planted.reshare(images, labels, 20, 4, "4", 3.0, 10, np.random.default_rng(5))
    assert np.bincount(a.labels)[4] == 60 and a.defect == "amplified"


@pytest.mark.parametrize("kind", ["blur", "noise"])
def test_degrade_changes_one_class(pool, kind):
    base = _base(pool)
    s = planted.degrade(base, 2, "2", kind, 1.5 if kind == "blur" else 40.0)
    assert not np.array_equal(s.images[s.labels == 2], base.images[base.labels == 2])
    np.testing.assert_array_equal(s.images[s.labels != 2], base.images[base.labels != 2])
    if kind == "blur":  # blur lowers the local contrast: smaller pixel-to-pixel differences
        grad = lambda x: np.abs(np.diff(x.astype(float), axis=2)).mean()  # noqa: E731
        assert grad(s.images[s.labels == 2]) < 0.8 * grad(base.images[base.labels == 2])


def test_copies_are_byte_equal_to_training_rows(pool):
    images, labels = pool
    s = planted.copies(images, labels, planted.class_counts(10, 5), np.random.default_rng(6))
    train = {im.tobytes() for im in images}
    assert all(im.tobytes() in train for im in s.images)
    np.testing.assert_array_equal(s.labels, labels[s.info["train_positions"]])


def test_one_domain_draws_only_that_domain(pool):
    images, labels = pool
    domains = np.where(np.arange(len(labels)) % 2, "synthetic", "wild")
    s = planted.one_domain(images, labels, domains, "synthetic", planted.class_counts(10, 5),
                           np.random.default_rng(7))
    assert (domains[s.info["pool_positions"]] == "synthetic").all() and s.defect == "domain_drift"


def test_draw_refuses_a_class_missing_from_the_pool(pool):
    images, labels = pool
    with pytest.raises(ValueError, match="no image of class 9"):
        planted.draw(labels[labels != 9], planted.class_counts(10, 2), np.random.default_rng(0))


def test_unseen_drops_pool_images_equal_to_manifest_images(pool):
    from datakit.manifest.model import pixel_sha256
    images = pool[0][:20]
    keep = planted.unseen(images, set(pixel_sha256(images[:5])))
    assert not keep[:5].any() and keep.sum() >= 10  # the first 5 (and any pixel-equal twins) go
    assert planted.unseen(images, set()).all()
