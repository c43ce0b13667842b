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
    return probe_batch()[:2]


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
