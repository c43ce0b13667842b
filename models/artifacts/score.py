"""The checkerboard score: how much of an image's spectral power sits at the frequencies a
stride-2 transposed convolution paints.

A stride-2 layer repeats its overlap pattern every 2 output pixels; two stacked, every 4. A
pattern of period p puts its power at the frequencies (a/p, b/p) cycles per pixel, a, b in
0..p-1, not both 0. Real artifacts are that pattern modulated by the content, so their power
spreads a little around those bins: we count a small neighbourhood of each (±1.5% of the
sampling rate, at least 2 bins), with a Hann window against edge leakage.

    score_p = 10 log10( mean power per bin at period-p frequencies
                        / mean power per bin over every other non-DC frequency )

Period 4 counts only the quarter frequencies (those not already period-2 ones), period 8
only the eighth ones (those of neither): a texture stuck to the grid of the residual blocks
(a quarter of the image's resolution) repeats every 4 or 8 pixels. The baseline ("every
other frequency") is the one periods 2 and 4 have always been scored against, so adding
period 8 changed none of their numbers. Natural
photographs put little power that high, so they score well below 0 dB; a checkerboard of
period p scores far above 0 at p. The output is not filtered: we measure, never smooth.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # scoring needs no torch: the API scores stored PNGs with NumPy alone
    import torch

PERIODS = (2, 4, 8)


def _as_array(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """(C, H, W) or (H, W) tensor/array, or (H, W, C) uint8 array -> float64 (C, H, W)."""
    a = image.detach().cpu().double().numpy() if hasattr(image, "detach") else np.asarray(image, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    elif a.ndim == 3 and a.shape[-1] in (1, 3, 4) and a.shape[0] not in (1, 3, 4):
        a = a.transpose(2, 0, 1)
    if a.ndim != 3:
        raise ValueError(f"expected one image (C, H, W), got shape {a.shape}")
    return a


def power_spectrum(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """Mean over channels of |FFT|² of the Hann-windowed, mean-removed image; (H, W),
    unshifted (DC at [0, 0])."""
    a = _as_array(image)
    _, h, w = a.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    a = (a - a.mean(axis=(1, 2), keepdims=True)) * window
    return (np.abs(np.fft.fft2(a)) ** 2).mean(axis=0)


def _neighbourhood(n: int, centres: list[float]) -> np.ndarray:
    """A boolean mask over n frequency indices: a few bins around each centre (in bins)."""
    half = max(2, round(0.015 * n))
    idx = np.arange(n)
    mask = np.zeros(n, dtype=bool)
    for c in centres:
        d = np.abs(idx - c)
        mask |= np.minimum(d, n - d) <= half
    return mask


def period_masks(h: int, w: int) -> dict[int, np.ndarray]:
    """For each period p, the (H, W) mask of frequencies that a period-p pattern occupies
    (and, for 4 and 8, only those that no shorter period does)."""
    masks: dict[int, np.ndarray] = {}
    for p in PERIODS:
        rows = [_neighbourhood(h, [a * h / p]) for a in range(p)]
        cols = [_neighbourhood(w, [b * w / p]) for b in range(p)]
        m = np.zeros((h, w), dtype=bool)
        for a in range(p):
            for b in range(p):
                if a == 0 and b == 0:
                    continue
                m |= np.outer(rows[a], cols[b])
        masks[p] = m
    masks[8] &= ~(masks[2] | masks[4])
    masks[4] &= ~masks[2]
    return masks


def checkerboard_score(image: torch.Tensor | np.ndarray) -> dict[int, float]:
    """{2: dB, 4: dB, 8: dB} for one image; see the module docstring for the formula."""
    power = power_spectrum(image)
    h, w = power.shape
    masks = period_masks(h, w)
    dc = np.outer(_neighbourhood(h, [0]), _neighbourhood(w, [0]))
    other = ~dc & ~masks[2] & ~masks[4]  # period 8's bins stay in the baseline (see above)
    base = power[other].mean() + 1e-20
    return {p: float(10 * np.log10((power[m].mean() + 1e-20) / base)) for p, m in masks.items()}


def checkerboard_scores(batch: torch.Tensor | np.ndarray) -> dict[str, object]:
    """Scores of every image in a batch (B, C, H, W): per image, and the mean per period."""
    per_image = [checkerboard_score(image) for image in batch]
    return {"images": per_image, "mean": {p: float(np.mean([s[p] for s in per_image])) for p in PERIODS}}


def checkerboard_map(image: torch.Tensor | np.ndarray, *, block: int = 16) -> np.ndarray:
    """Where the period-2 pattern is: per pixel block, the energy of the block's 2x2-periodic
    component (the mean of each 2x2 phase, minus the block's mean), (H // block, W // block)."""
    a = _as_array(image).mean(axis=0)
    h, w = (a.shape[0] // block) * block, (a.shape[1] // block) * block
    blocks = a[:h, :w].reshape(h // block, block // 2, 2, w // block, block // 2, 2)
    phases = blocks.mean(axis=(1, 4))  # (H/b, 2, W/b, 2): the mean of each 2x2 phase
    periodic = phases - phases.mean(axis=(1, 3), keepdims=True)
    return (periodic ** 2).mean(axis=(1, 3))
