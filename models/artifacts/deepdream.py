"""The article's "Artifacts in Gradients", as DeepDream (Mordvintsev et al. 2015): gradient
ascent on a layer of the offline VGG19 loss network (models/loss_network.py), from a
photograph. The gradient that reaches the image passes backwards through VGG's strided
pooling, so it carries a checkerboard; ascending it at a fixed position adds the pattern up,
step after step, in the same place. Shifting the image by a random offset before each step
(and the gradient back after it), "jitter", moves the pattern every step, so it averages out.
The article also suggests that max pooling (which routes each gradient to one pixel of its
2x2 cell) is worse than average pooling.

Each run: x <- x + lr * g / mean|g| for `steps` steps, g = d/dx of the mean squared activation
of `layer`; jitter draws the shift from a seeded generator, uniformly in -jitter..jitter
pixels on each axis (torch.roll: the image wraps, no border is invented); the image is kept in
0..255 each step and the result rounded to whole levels (what a PNG of it holds). What is
scored is what the ascent added (result - photo), with the score of the result beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from models.artifacts.score import checkerboard_score
from models.loss_network import CONTENT_LAYER, STYLE_LAYERS, LossNetwork

DREAM_LAYER = "relu4_4"
DREAM_STEPS = 20
DREAM_LR = 2.0  # pixels (0..255) per step, in units of the gradient's mean magnitude
DREAM_JITTER = 4  # the largest shift, pixels


# The layers a dream can ascend: VGG19's taps (the loss network computes no others), shallow first.
DREAM_LAYERS = tuple(sorted({*STYLE_LAYERS["vgg19"], CONTENT_LAYER}))


def check_layer(layer: str) -> str:
    if layer not in DREAM_LAYERS:
        raise ValueError(f"unknown layer {layer!r}; valid: {', '.join(DREAM_LAYERS)}")
    return layer


def dream(net: LossNetwork, photo: torch.Tensor, *, layer: str = DREAM_LAYER, steps: int = DREAM_STEPS,
          lr: float = DREAM_LR, jitter: int = 0, seed: int = 0) -> torch.Tensor:
    """Gradient ascent from `photo` ((3, H, W), 0..255); returns the result (3, H, W), whole levels."""
    check_layer(layer)
    if jitter < 0:
        raise ValueError(f"jitter must be >= 0 pixels, got {jitter}")
    rng = torch.Generator().manual_seed(seed)
    x = photo.detach().clone()[None]
    for _ in range(steps):
        dy, dx = (torch.randint(-jitter, jitter + 1, (2,), generator=rng).tolist() if jitter else (0, 0))
        shifted = torch.roll(x, shifts=(dy, dx), dims=(2, 3)).requires_grad_(True)
        net(shifted, upto=layer)[layer].pow(2).mean().backward()
        g = torch.roll(shifted.grad, shifts=(-dy, -dx), dims=(2, 3))
        x = (x + lr * g / (g.abs().mean() + 1e-12)).clamp(0, 255)  # an image stays an image
    return x[0].detach().round()  # whole levels: what a PNG of it holds


@dataclass(frozen=True)
class DreamRow:
    pooling: str
    jitter: int
    layer: str
    steps: int
    added_p2: float  # score of what the ascent added (result - photo)
    added_p4: float
    result_p2: float  # score of the result itself
    result_p4: float

    def as_dict(self) -> dict:
        return asdict(self)


def dream_table(photo: torch.Tensor, loss_networks: dict[str, LossNetwork], *, jitters: Sequence[int] = (0, DREAM_JITTER),
                layer: str = DREAM_LAYER, steps: int = DREAM_STEPS, lr: float = DREAM_LR, seed: int = 0,
                keep: dict | None = None) -> list[DreamRow]:
    """One row per (pooling name -> network, jitter). `keep` receives (pooling, jitter) -> result."""
    rows = []
    for pooling, net in loss_networks.items():
        for j in jitters:
            result = dream(net, photo, layer=layer, steps=steps, lr=lr, jitter=j, seed=seed)
            added, whole = checkerboard_score(result - photo), checkerboard_score(result)
            if keep is not None:
                keep[(pooling, j)] = result
            rows.append(DreamRow(pooling=pooling, jitter=j, layer=layer, steps=steps, added_p2=added[2],
                                 added_p4=added[4], result_p2=whole[2], result_p4=whole[4]))
    return rows
