"""Perceptual-loss maths, pure functions on tensors (Johnson et al. 2016, Gatys et al. 2016)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from models.config import DEFAULT_WEIGHTS

if TYPE_CHECKING:
    from torch import nn

    from models.loss_network import LossNetwork


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C), divided by C*H*W so the scale does not grow with size.

    Always in fp32, also under bf16 autocast: a Gram sums H*W products, and bf16's 8-bit
    mantissa would lose the style loss's small differences in that sum."""
    b, c, h, w = features.shape
    with torch.autocast(features.device.type, enabled=False):
        f = features.float().reshape(b, c, h * w)
        return f @ f.transpose(1, 2) / (c * h * w)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(features, target)


def style_loss(features: Mapping[str, torch.Tensor], target_grams: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Sum over layers of the MSE between Gram matrices; one style Gram broadcasts over the batch."""
    total = torch.zeros((), device=next(iter(features.values())).device)
    for name, target in target_grams.items():
        g = gram_matrix(features[name])
        total = total + F.mse_loss(g, target.expand_as(g))
    return total


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels (B, C, H, W)."""
    dh = (images[..., 1:, :] - images[..., :-1, :]).abs().mean()
    dw = (images[..., :, 1:] - images[..., :, :-1]).abs().mean()
    return dh + dw


@dataclass(frozen=True)
class LossWeights:
    content: float = DEFAULT_WEIGHTS["content"]
    style: float = DEFAULT_WEIGHTS["style"]
    tv: float = DEFAULT_WEIGHTS["tv"]


def perceptual_loss(loss_net: LossNetwork, output: torch.Tensor, *, content_target: torch.Tensor,
                    style_grams: Mapping[str, torch.Tensor], weights: LossWeights = LossWeights()) -> dict[str, torch.Tensor]:
    """The training objective (Johnson et al.): content at the loss network's content layer,
    Gram style at its style layers, and total variation of `output`; the weighted sum is
    "loss". The one definition used by training, the benchmark and the gradient probe."""
    feats = loss_net(output)
    c = content_loss(feats[loss_net.content_layer], content_target)
    s = style_loss(feats, style_grams)
    tv = total_variation(output)
    return {"loss": weights.content * c + weights.style * s + weights.tv * tv, "content": c, "style": s, "tv": tv}


def stability_loss(net: nn.Module, content: torch.Tensor, *, noise: torch.Tensor,
                   output: torch.Tensor | None = None, shift: torch.Tensor | None = None,
                   span: int = 1) -> torch.Tensor:
    """How much the network's output moves when its input barely does: a training term that
    lowers flicker in stylised video without optical flow (the idea of Gupta et al. 2017 and
    of the "stability" losses after them, in its simplest form). With y = net(x), on 0..255:

        shift = mean over the crop of (y[..., dy:dy+n, dx:dx+m] - net(x[..., dy:dy+n, dx:dx+m]))^2
                (the input shifted up by dy and left by dx pixels, `shift` = (dy, dx), by
                cropping it: a shift-equivariant network gives the shifted output). The
                crop is the image less `span` rows and columns (n = H - span, m = W - span),
                whatever the shift up to span: one shape for every shift, so a compiled step
                is not compiled again when the shift changes. The default, (1, 1) with span
                1, is the input less its first row and column.
        noise = mean of (net(x + n) - y)^2, n the given noise (training draws it Gaussian,
                STABILITY_NOISE_STD in models/config.py, seeded by seed and step)
        stability_loss = shift + noise

    0 for a network that is exactly shift-equivariant (for that shift) and ignores the
    noise; squared 0..255 units, so its weight (TrainConfig.stability_weight) reads against
    the pixel scale, not the loss network's. `output` is y when the caller already has it."""
    y = net(content) if output is None else output
    h, w = content.shape[-2:]
    if shift is None:
        shift = torch.ones(2, dtype=torch.long)
    shift = shift.to(content.device)
    rows = torch.arange(h - span, device=content.device) + shift[0]  # indices, not slices: the
    cols = torch.arange(w - span, device=content.device) + shift[1]  # shift is data, not shape

    def crop(t: torch.Tensor) -> torch.Tensor:
        return t.index_select(-2, rows).index_select(-1, cols)

    shifted = F.mse_loss(crop(y), net(crop(content)))
    noisy = F.mse_loss(net(content + noise), y)
    return shifted + noisy
