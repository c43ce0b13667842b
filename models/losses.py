"""Perceptual-loss maths, pure functions on tensors (Johnson et al. 2016, Gatys et al. 2016)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C), divided by C*H*W so the scale does not grow with size."""
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w)
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
