"""Artifacts in gradients (the article's second finding): the backward pass of a strided
convolution is a transposed convolution, so the gradient that reaches an image through a
strided layer, or through max pooling, carries a checkerboard of its own.

Each probe takes the gradient of a loss with respect to a photograph and scores it with the
same checkerboard score as images. The random layers are seeded; the VGG probe uses the
loss network we train with, once with its max pooling and once with average pooling.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from models.artifacts.score import checkerboard_score
from models.loss_network import LossNetwork
from models.losses import LossWeights, gram_matrix, perceptual_loss


@dataclass(frozen=True)
class GradientRow:
    probe: str
    seeds: int
    p2_mean: float
    p2_std: float
    p4_mean: float
    p4_std: float

    def as_dict(self) -> dict:
        return asdict(self)


def input_gradient(model: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor) -> torch.Tensor:
    """d/dx of the feature energy ½‖model(x)‖² at a photograph: (3, H, W). The features of a
    photo are smooth, so any period in this gradient comes from the backward pass itself
    (a random direction would not do: it makes the gradient white noise, whose power spectrum
    is flat even where its variance is periodic)."""
    x = image[None].clone().requires_grad_(True)
    (0.5 * model(x).pow(2).sum()).backward()
    return x.grad[0]


def _layer(seed: int, *, stride: int, pool: str | None) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Conv2d(3, 32, 3, stride=stride, padding=1)]
    if pool == "max":
        layers.append(nn.MaxPool2d(2))
    elif pool == "avg":
        layers.append(nn.AvgPool2d(2))
    return nn.Sequential(*layers)


LAYER_PROBES = {
    "conv k3 stride 1": dict(stride=1, pool=None),
    "conv k3 stride 2": dict(stride=2, pool=None),
    "conv k3 stride 1 + max pool 2": dict(stride=1, pool="max"),
    "conv k3 stride 1 + avg pool 2": dict(stride=1, pool="avg"),
}


PROBE_STYLE_WEIGHT = 1e-2


def vgg_loss_gradient(loss_net: LossNetwork, image: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Gradient of the training loss (content against the photo itself shifted by noise,
    style against `style`) with respect to the image, through the loss network."""
    with torch.no_grad():
        target_grams = {k: gram_matrix(v) for k, v in loss_net(style[None]).items() if k in loss_net.style_layers}
        target = loss_net(image[None])[loss_net.content_layer]
    g = torch.Generator().manual_seed(0)
    x = (image + 8 * torch.randn(image.shape, generator=g))[None].requires_grad_(True)
    # TV weighs nothing here: the probe is about the gradient through the loss network. The
    # style weight is the one docs/artifacts.md measured with, not the training default.
    loss = perceptual_loss(loss_net, x, content_target=target, style_grams=target_grams,
                           weights=LossWeights(style=PROBE_STYLE_WEIGHT, tv=0))
    loss["loss"].backward()
    return x.grad[0]


def _row(probe: str, scores: Sequence[dict[int, float]]) -> GradientRow:
    p2, p4 = [s[2] for s in scores], [s[4] for s in scores]
    return GradientRow(probe=probe, seeds=len(scores), p2_mean=float(np.mean(p2)), p2_std=float(np.std(p2)),
                       p4_mean=float(np.mean(p4)), p4_std=float(np.std(p4)))


def probe_gradients(photo: torch.Tensor, *, seed: int = 0, loss_networks: dict[str, LossNetwork] | None = None,
                    style: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Each probe's input gradient for one seed, for pictures."""
    grads = {name: input_gradient(_layer(seed, **kw), photo) for name, kw in LAYER_PROBES.items()}
    for name, net in (loss_networks or {}).items():
        grads[f"{name} training loss"] = vgg_loss_gradient(net, photo, style)
    return grads


def gradient_table(photo: torch.Tensor, *, seeds: Sequence[int] = (0, 1, 2, 3),
                   loss_networks: dict[str, LossNetwork] | None = None,
                   style: torch.Tensor | None = None) -> list[GradientRow]:
    """Scores of input gradients through single layers (over seeds), then, if loss networks
    are given (name -> network), through each of them with the training loss."""
    rows = []
    for name, kw in LAYER_PROBES.items():
        rows.append(_row(name, [checkerboard_score(input_gradient(_layer(s, **kw), photo)) for s in seeds]))
    for name, net in (loss_networks or {}).items():
        if style is None:
            raise ValueError("the loss-network probe needs a style image")
        rows.append(_row(f"{name} training loss", [checkerboard_score(vgg_loss_gradient(net, photo, style))]))
    return rows
