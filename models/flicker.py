"""Flicker: how much a stylised video changes from one frame to the next where its input does not.

Definition. Take the input frames I_0..I_{T-1} and the output frames O_0..O_{T-1}, RGB, 8-bit
levels (0..255), all the same size. For each pair of consecutive frames t-1, t the *still*
pixels are those whose input changes by at most STILL_LEVELS in every channel:

    S_t = { p : max_c |I_t(p, c) - I_{t-1}(p, c)| <= STILL_LEVELS }

and the flicker is the mean absolute change of the output over those pixels, averaged over
channels, all pairs pooled:

    flicker = sum_t sum_{p in S_t} mean_c |O_t(p, c) - O_{t-1}(p, c)|  /  sum_t |S_t|

in 8-bit levels. 0 means the output holds still wherever the input does; a network that
amplifies sensor or codec noise (the flicker of feed-forward style transfer) scores high.
No optical flow: moving pixels are left out rather than motion-compensated, so a clip must
have still regions (a still shot, or the flat parts of a slow pan) to be measured; with none,
the flicker is NaN. The input's own flicker, flicker(I, I), is the noise left in its still
pixels (at most STILL_LEVELS by construction): the floor against which the output's reads.
STILL_LEVELS = 4 leaves room for the small noise a lossy codec leaves on a still scene.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

STILL_LEVELS = 4


class FlickerMeter:
    """The flicker of a video fed one frame pair (input, output) at a time, as it streams."""

    def __init__(self, still_levels: float = STILL_LEVELS) -> None:
        self.still_levels = still_levels
        self._prev: tuple[np.ndarray, np.ndarray] | None = None
        self._sum = 0.0
        self._still = 0
        self._pixels = 0

    def update(self, frame_in: np.ndarray, frame_out: np.ndarray) -> None:
        """(H, W, 3) arrays, 8-bit levels (uint8 or float)."""
        a, b = np.asarray(frame_in, dtype=np.float32), np.asarray(frame_out, dtype=np.float32)
        if a.shape != b.shape or a.ndim != 3:
            raise ValueError(f"an input frame {a.shape} and its output {b.shape} must be the same (H, W, C) shape")
        if self._prev is not None:
            pa, pb = self._prev
            if pa.shape != a.shape:
                raise ValueError(f"frames change size from {pa.shape} to {a.shape}")
            still = np.abs(a - pa).max(axis=2) <= self.still_levels
            self._sum += float(np.abs(b - pb).mean(axis=2)[still].sum(dtype=np.float64))
            self._still += int(still.sum())
            self._pixels += still.size
        self._prev = (a, b)

    @property
    def value(self) -> float:
        """The flicker so far, in 8-bit levels; NaN before any still pixel was seen."""
        return self._sum / self._still if self._still else math.nan

    @property
    def still_fraction(self) -> float:
        """The share of (pixel, frame pair) samples that were still."""
        return self._still / self._pixels if self._pixels else math.nan


def flicker(frames_in: Iterable[np.ndarray], frames_out: Iterable[np.ndarray], *,
            still_levels: float = STILL_LEVELS) -> float:
    """The flicker of `frames_out` against `frames_in` (see the module's docstring), in 8-bit
    levels; flicker(frames, frames) is the input's own."""
    meter = FlickerMeter(still_levels)
    n = 0
    for a, b in zip(frames_in, frames_out, strict=True):
        meter.update(a, b)
        n += 1
    if n < 2:
        raise ValueError(f"flicker needs at least 2 frames, got {n}")
    return meter.value
