"""Shift equivariance (Karras et al. 2021, "Alias-Free Generative Adversarial Networks", EQ-T):
how closely a network's output follows its input when the input moves by whole pixels.

    EQ-T(s) = PSNR between f(shift_s(x)) and shift_s(f(x)), in dB on the 0..255 scale

A network that paints a pattern tied to its pixel grid (a checkerboard of period p, or a
texture stuck to the grid of its residual blocks) keeps that pattern in place while the
content moves, so the two disagree at shifts not divisible by p and agree at shifts that
are: a period-4 pattern drops EQ-T at 1, 2 and 3 and not at 4, a period-2 one at 1 and 3.
Unlike a spectral score this needs no assumption about the pattern's shape. Shift 4 is a
whole period of the two x2 stages' grid: the network's own level, for comparison.

Both inputs are crops of the same size (so the network pads them alike) and the
comparison leaves out a margin at every border, where the crop and the padding disturb the
output. Each shift is horizontal and vertical, their squared errors averaged. The outputs are
compared as a PNG holds them: clamped to 0..255.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

SHIFTS = (1, 2, 3, 4)
MARGIN = 16  # output pixels left out at every border: beyond what the crop and padding reach
# (on images too small for it, a quarter of what the largest shift leaves: the probe of a tiny
# test run still measures, with more of the border in it)
PEAK = 255.0


def _psnr(mse: float) -> float:
    return 100.0 if mse <= 1e-10 else 10 * math.log10(PEAK**2 / mse)


@torch.no_grad()
def shift_equivariance(net: Callable[[torch.Tensor], torch.Tensor], photos: torch.Tensor, *,
                       shifts: Sequence[int] = SHIFTS, margin: int = MARGIN) -> dict[int, float]:
    """{shift: EQ-T in dB} over a batch of photos (B, 3, H, W), 0..255; higher is more
    equivariant (100 dB: exactly). Sides must exceed 2 * max(shifts) + 4 pixels."""
    if photos.ndim != 4:
        raise ValueError(f"photos must be (B, 3, H, W), got shape {tuple(photos.shape)}")
    top = max(shifts)
    side = min(photos.shape[-2:])
    if side <= 2 * top + 4:
        raise ValueError(f"images must be larger than {2 * top + 4} pixels a side for shifts up to {top}")
    margin = min(margin, (side - top) // 4)
    sq: dict[int, list[float]] = {s: [] for s in shifts}
    for axis in (-1, -2):
        n = photos.shape[axis] - top  # every crop has this length
        # f(x) and f(shift_s(x)) for every s in one batch: the network runs once per axis.
        crops = torch.cat([photos.narrow(axis, s, n) for s in (0, *shifts)])
        base, *moved = net(crops).clamp(0, PEAK).split(photos.shape[0])
        other = -2 if axis == -1 else -1
        m = photos.shape[other]
        for s, out in zip(shifts, moved):
            # f(shift_s(x))[j] should equal f(x)[j + s] (its content s pixels earlier); compare
            # away from the borders of both axes.
            a = out.narrow(axis, margin, n - 2 * margin - s).narrow(other, margin, m - 2 * margin)
            b = base.narrow(axis, margin + s, n - 2 * margin - s).narrow(other, margin, m - 2 * margin)
            sq[s].append(float((a.float() - b.float()).pow(2).mean()))
    return {s: _psnr(sum(v) / len(v)) for s, v in sq.items()}


# The grid a pattern can be tied to: the network's two x2 stages (models/transformer_net.py
# SIZE_MULTIPLE), so its residual blocks sit on a grid of 4x4-pixel cells.
GRID = 4


@torch.no_grad()
def grid_averaged(net: Callable[[torch.Tensor], torch.Tensor], photos: torch.Tensor, *, grid: int = GRID) -> torch.Tensor:
    """The network's output with everything tied to its grid averaged away: the mean, over the
    grid*grid phases at which the grid can meet the photo, of the output at that phase (the
    photo moved by (a, b) pixels with edge replication, the output moved back). A pattern fixed
    to the grid lands at every phase once and averages to its mean; whatever follows the
    content stays. So what this changes in an output (models/measures.py `locked_p*`) is what
    the grid holds in place, apart from the style's own texture. grid*grid passes of the net."""
    h, w = photos.shape[-2:]
    total = torch.zeros_like(photos, dtype=torch.float32)
    for a in range(grid):
        for b in range(grid):
            out = net(torch.nn.functional.pad(photos, (b, 0, a, 0), mode="replicate"))
            total += out[..., a:a + h, b:b + w].float()
    return total / grid**2
