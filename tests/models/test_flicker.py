"""The flicker measure (models/flicker.py) on frames whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.flicker import STILL_LEVELS, FlickerMeter, flicker


def still_clip(n: int = 6, noise: float = 0.0, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(20, 24, 3)).astype(np.float32)
    return [np.clip(base + rng.normal(0, noise, base.shape), 0, 255) for _ in range(n)]


def test_a_still_output_has_no_flicker_and_a_jittering_one_has_its_amplitude():
    frames = still_clip()
    assert flicker(frames, frames) == 0.0
    # An output alternating by +-5 levels everywhere: every pair differs by 10 levels.
    jitter = [f + (5 if i % 2 else -5) for i, f in enumerate(frames)]
    assert flicker(frames, jitter) == pytest.approx(10.0)


def test_moving_pixels_are_left_out():
    frames = still_clip()
    moving = [f.copy() for f in frames]
    out = [f.copy() for f in frames]
    for i in range(len(frames)):
        moving[i][:, :12] = (i * 40) % 256  # the left half of the input changes a lot each frame
        out[i][:, :12] = 255 - (i * 40) % 256  # and so does the output there: that is not flicker
    assert flicker(moving, out) == 0.0
    meter = FlickerMeter()
    for a, b in zip(moving, out, strict=True):
        meter.update(a, b)
    assert meter.still_fraction == pytest.approx(0.5)


def test_noise_below_the_threshold_counts_as_still():
    noisy = [np.round(f) for f in still_clip(noise=0.6, seed=1)]
    changes = np.abs(np.diff(np.stack(noisy), axis=0)).max(axis=3)
    assert (changes <= STILL_LEVELS).mean() > 0.95
    assert 0 < flicker(noisy, noisy) <= STILL_LEVELS  # the input's own flicker: its noise


def test_no_still_pixels_and_bad_input():
    a = [np.zeros((4, 4, 3)), np.full((4, 4, 3), 255.0)]
    assert math.isnan(flicker(a, a))
    with pytest.raises(ValueError, match="at least 2 frames"):
        flicker(a[:1], a[:1])
    with pytest.raises(ValueError, match="same"):
        flicker(a, [np.zeros((4, 5, 3))] * 2)
    with pytest.raises(ValueError):
        flicker(a, a[:1])  # different lengths
