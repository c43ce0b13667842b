"""Shift equivariance (models/artifacts/equivariance.py, EQ-T of Karras et al. 2021): a pattern
tied to the pixel grid drops it at the shifts its period does not divide, and only there."""

import pytest
import torch

from models.artifacts.equivariance import SHIFTS, shift_equivariance
from models.preview import probe_batch
from models.transformer_net import TransformerNet


def with_pattern(net, period: int, amplitude: float = 20.0):
    """net's output plus a fixed checkerboard of `period` on the pixel grid."""
    def f(x):
        y = net(x)
        h, w = y.shape[-2:]
        i, j = torch.arange(h)[:, None] // (period // 2), torch.arange(w)[None] // (period // 2)
        return y + amplitude * ((i + j) % 2).float()
    return f


@pytest.fixture(scope="module")
def photos():
    return probe_batch(64)[:2]  # 64 px: enough for every shift and the 4x4 grid, and fast


@pytest.fixture(scope="module")
def bilinear():
    torch.manual_seed(0)
    return TransformerNet(decoder="resize-bilinear").eval()


def test_the_identity_is_exactly_equivariant(photos):
    assert shift_equivariance(lambda x: x, photos) == {s: 100.0 for s in SHIFTS}


def test_resize_bilinear_has_no_drop_at_odd_shifts(bilinear, photos):
    eq = shift_equivariance(bilinear, photos)
    assert min(eq.values()) > 45, eq  # dB: small differences only
    assert abs(eq[1] - eq[2]) < 3 and abs(eq[3] - eq[2]) < 3, eq  # no period-2 pattern


def test_a_period_2_pattern_drops_at_odd_shifts_only(bilinear, photos):
    eq = shift_equivariance(with_pattern(bilinear, 2), photos)
    assert eq[1] < 30 and eq[3] < 30, eq
    assert eq[2] > 45 and eq[4] > 45, eq


def test_a_period_4_pattern_drops_at_shifts_1_2_3_and_not_4(bilinear, photos):
    eq = shift_equivariance(with_pattern(bilinear, 4), photos)
    assert max(eq[1], eq[2], eq[3]) < 30 and eq[4] > 45, eq


def test_too_small_images_are_refused_with_a_message():
    with pytest.raises(ValueError, match="larger than"):
        shift_equivariance(lambda x: x, torch.zeros(1, 3, 12, 12))
    assert shift_equivariance(lambda x: x, torch.zeros(1, 3, 32, 32))[1] == 100.0  # small: a smaller margin


def test_grid_averaging_removes_a_pattern_tied_to_the_grid_and_keeps_one_that_follows_the_content(bilinear, photos):
    """models/artifacts/equivariance.py grid_averaged: a period-4 pattern fixed to the pixel grid
    averages to its mean, the same pattern painted into the photo (so it moves with it) stays;
    the grid-averaged network is equivariant at every shift. The checkerboard score of what it
    takes away is measures.py's locked_p4."""
    import numpy as np

    from models.artifacts.equivariance import grid_averaged
    from models.artifacts.score import checkerboard_score

    def score(t: torch.Tensor) -> dict[int, float]:
        return checkerboard_score(np.asarray(t[0].clamp(0, 255).permute(1, 2, 0).round().byte()))

    photo = photos[:1]
    locked = with_pattern(bilinear, 4)
    out, averaged = locked(photo), grid_averaged(locked, photo)
    assert torch.allclose(averaged, grid_averaged(bilinear, photo) + 10.0, atol=1e-3)  # the pattern's mean: 20 / 2
    assert score(out)[4] - score(averaged)[4] > 10
    eq = shift_equivariance(lambda x: grid_averaged(locked, x), photos)
    assert min(eq[1], eq[2], eq[3]) > eq[4] - 3, eq  # no drop at any shift

    follows = with_pattern(lambda x: x, 4)(photo)  # the pattern in the photo itself
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))  # away from the replicated edges
    assert torch.allclose(grid_averaged(lambda x: x, follows)[inner], follows[inner], atol=1e-3)
