"""Antialiased bilinear resize in numpy: hand-computed answers, and the same bytes as the
PyTorch kernel compose used before (so old composes rebuild bit-identical)."""
from __future__ import annotations

import numpy as np
import pytest

from datakit.composition.geometry import resize_bilinear


def test_shrinking_averages_with_the_stretched_triangle():
    # 4 -> 2: each output centre sees 3 inputs with weights 3/7, 3/7, 1/7 (and mirrored):
    # (0·3 + 100·3 + 200) / 7 = 71.4 and (100 + 200·3 + 255·3) / 7 = 209.3
    row = np.array([0, 100, 200, 255], np.uint8).reshape(1, 1, 4, 1)
    assert resize_bilinear(row, 1, 2).ravel().tolist() == [71, 209]


def test_enlarging_interpolates_between_neighbours():
    # 2 -> 4: centres at 0.25, 0.75, 1.25, 1.75 of the input; the edges clamp
    row = np.array([0, 200], np.uint8).reshape(1, 1, 2, 1)
    assert resize_bilinear(row, 1, 4).ravel().tolist() == [0, 50, 150, 200]


@pytest.mark.parametrize("value", [0, 1, 127, 254, 255])
@pytest.mark.parametrize("shape", [(28, 28, 32, 32), (28, 28, 9, 9), (128, 128, 28, 28), (5, 7, 40, 3)])
def test_a_flat_image_stays_flat(value, shape):
    h, w, nh, nw = shape
    out = resize_bilinear(np.full((2, h, w, 3), value, np.uint8), nh, nw)
    assert out.shape == (2, nh, nw, 3) and (out == value).all()


def test_channels_are_resized_independently():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (3, 20, 12, 3), dtype=np.uint8)
    out = resize_bilinear(rgb, 7, 30)
    for c in range(3):
        assert np.array_equal(out[..., c:c + 1], resize_bilinear(rgb[..., c:c + 1], 7, 30))


CASES = [(28, 28, 32, 32), (28, 28, 16, 16), (28, 28, 8, 8), (28, 28, 27, 27), (128, 128, 28, 28),
         (32, 32, 28, 28), (100, 37, 28, 10), (20, 10, 32, 16), (8, 8, 64, 64), (28, 28, 7, 5)]


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("shape", CASES, ids=lambda s: "{}x{}->{}x{}".format(*s))
def test_bytes_equal_torch_antialiased_bilinear(shape, channels):
    torch = pytest.importorskip("torch")
    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip("torch's uint8 antialiased kernel (the reference) needs AVX2")
    import torch.nn.functional as F
    h, w, nh, nw = shape
    rng = np.random.default_rng(h * 1000 + nh)
    images = rng.integers(0, 256, (40, h, w, channels), dtype=np.uint8)
    images[20:] = np.where(rng.random((20, h, w, channels)) < 0.3, 255, 0)  # glyph-like: saturated strokes
    block = torch.from_numpy(images).permute(0, 3, 1, 2)  # channels-last view, as compose passed it
    ref = F.interpolate(block, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    assert np.array_equal(resize_bilinear(images, nh, nw), ref.permute(0, 2, 3, 1).numpy())
