"""Overlap maps: how many kernel contributions each output pixel of an upsampler receives,
computed by running the decoder's own layers, not drawn by hand (Odena et al.'s figures 1-3).

Each stage is built from the registry with one channel in and out, every weight set to 1 and
every bias to 0, and fed ones: the output at a pixel is then the number of (input pixel,
kernel tap) pairs that reach it. Stacked stages multiply their patterns, as in the article.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from models.blocks import DECODERS, parse_decoder


def _ones_stage(name: str) -> nn.Module:
    layer = DECODERS[name].build(1, 1)
    with torch.no_grad():
        for m in layer.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                m.weight.fill_(1.0)
                if m.bias is not None:
                    m.bias.zero_()
    return layer


def overlap_map(decoder: str | Sequence[str], *, size: int = 8) -> np.ndarray:
    """Contribution counts of the interior of the output, for one stage or a stack
    (a name, or one name per stage). The border, where padding changes the counts, is cut."""
    names = parse_decoder(decoder, stages=len(decoder.split(",")) if isinstance(decoder, str) else len(decoder))
    stack = nn.Sequential(*(_ones_stage(n) for n in names))
    with torch.no_grad():
        out = stack(torch.ones(1, 1, size, size))[0, 0].numpy()
    cut = 2 ** len(names) * 2  # beyond any kernel's reach of the border, a whole number of periods
    return np.rint(out[cut:-cut, cut:-cut]).astype(int)


def overlap_period(counts: np.ndarray) -> int:
    """The smallest period (1, 2, 4 or 8) with which the map tiles; 1 means flat: every
    pixel receives the same number of contributions. 0: no such period."""
    h, w = counts.shape
    for p in (1, 2, 4, 8):
        tiled = np.tile(counts[:p, :p], (-(-h // p), -(-w // p)))[:h, :w]
        if np.array_equal(tiled, counts):
            return p
    return 0


def plot_overlap(counts: np.ndarray, path, *, title: str = ""):
    """The map as a picture with each pixel's count written in it (first 16x16 pixels)."""
    from models.artifacts.figures import plt, save_figure

    view = counts[:16, :16]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.imshow(view, cmap="viridis", interpolation="nearest", vmin=0, vmax=max(1, int(counts.max())))
    for (i, j), v in np.ndenumerate(view):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=6, color="white" if v < counts.max() * 0.6 else "black")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{title}: contributions per output pixel", fontsize=9)
    return save_figure(fig, path)
