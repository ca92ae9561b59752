"""The per-image jitter of the out-of-fold networks (label-issue search): known answers."""
from __future__ import annotations

import math

import pytest
import torch

from datakit.judge.out_of_fold import affine_matrices, jitter

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _image():
    x = torch.full((1, 1, 8, 8), -1.0)
    x[0, 0, 2:5, 3] = 1.0  # a short vertical bar
    return x


def _sample(x, angle=0.0, scale=1.0, shift=(0.0, 0.0)):
    theta = affine_matrices(torch.tensor([angle]), torch.tensor([scale]), torch.tensor([shift]))
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x + 1, grid, align_corners=False) - 1


def test_identity_and_whole_pixel_shifts_are_exact():
    x = _image()
    assert torch.allclose(_sample(x), x, atol=1e-6)
    # an x offset of 2 * 2/8 grid units on an 8-pixel image moves the bar 2 pixels left
    moved = _sample(x, shift=(0.5, 0.0))
    expected = torch.full_like(x, -1.0)
    expected[0, 0, 2:5, 1] = 1.0
    assert torch.allclose(moved, expected, atol=1e-6)


def test_a_quarter_turn_lays_the_bar_down():
    x = torch.full((1, 1, 9, 9), -1.0)
    x[0, 0, 2:7, 4] = 1.0  # vertical bar through the centre pixel
    turned = _sample(x, angle=math.pi / 2)
    expected = torch.full_like(x, -1.0)
    expected[0, 0, 4, 2:7] = 1.0
    assert torch.allclose(turned, expected, atol=1e-5)


def test_jitter_is_seeded_and_zero_jitter_changes_nothing():
    x = _image().repeat(4, 1, 1, 1)
    same = jitter(x, rotation=0, shift=0, scale=0, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(same, x, atol=1e-6)
    a = jitter(x, rotation=10, shift=2, scale=0.1, generator=torch.Generator().manual_seed(1))
    b = jitter(x, rotation=10, shift=2, scale=0.1, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.allclose(a, x)
    assert a.min() >= -1 - 1e-6 and a.max() <= 1 + 1e-6
