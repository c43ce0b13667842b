"""Building blocks of the transfer network and the one registry of decoders.

Every upsampling layer doubles height and width. The names are the project's vocabulary
(API, CLI, config, reports); see the table in README.md ("Decoders") and Odena et al.,
"Deconvolution and Checkerboard Artifacts" (https://distill.pub/2016/deconv-checkerboard/).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from models.vocabulary import DECODER_INFO, DecoderInfo, decoder_label, parse_decoder  # noqa: F401 (re-exported)

NormLayer = Callable[[int], nn.Module]


def instance_norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=True)


class ConvLayer(nn.Sequential):
    """Reflection-padded convolution: borders are mirrored, not zero, so edges stay clean."""

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int, stride: int = 1):
        super().__init__(
            nn.ReflectionPad2d(kernel_size // 2),
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride),
        )


class ResidualBlock(nn.Module):
    """Two 3x3 convs with a skip connection (He et al. 2016, as in Johnson et al. 2016)."""

    def __init__(self, channels: int, *, norm_layer: NormLayer = instance_norm):
        super().__init__()
        self.body = nn.Sequential(
            ConvLayer(channels, channels, kernel_size=3),
            norm_layer(channels),
            nn.ReLU(inplace=True),
            ConvLayer(channels, channels, kernel_size=3),
            norm_layer(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


# --- the decoder registry -----------------------------------------------------------------


@dataclass(frozen=True)
class Decoder:
    info: DecoderInfo  # name, what the layer does, its overlap (models/vocabulary.py)
    build: Callable[[int, int], nn.Module]  # (in_channels, out_channels) -> x2 upsampler

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def layer(self) -> str:
        return self.info.layer

    @property
    def overlap(self) -> str:
        return self.info.overlap


DECODERS: dict[str, Decoder] = {}


def register_decoder(name: str) -> Callable:
    """A decoder is a row in models/vocabulary.py plus one builder here, registered by name;
    a name missing from the vocabulary, or registered twice, is a programming error."""

    def wrap(build: Callable[[int, int], nn.Module]) -> Callable[[int, int], nn.Module]:
        if name in DECODERS:
            raise ValueError(f"decoder {name!r} is already registered")
        if name not in DECODER_INFO:
            raise ValueError(f"decoder {name!r} is not in models/vocabulary.py")
        DECODERS[name] = Decoder(info=DECODER_INFO[name], build=build)
        return build

    return wrap


@register_decoder("deconv")
def _deconv(in_channels: int, out_channels: int) -> nn.Module:
    return nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1)


@register_decoder("deconv4")
def _deconv4(in_channels: int, out_channels: int) -> nn.Module:
    return nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1)


class ResizeConv(nn.Sequential):
    """Upsample, then a stride-1 conv: every output pixel sees the same kernel footprint,
    so the layer is biased against checkerboards (Odena et al. 2016)."""

    def __init__(self, in_channels: int, out_channels: int, *, mode: str):
        super().__init__(
            nn.Upsample(scale_factor=2, mode=mode),
            ConvLayer(in_channels, out_channels, kernel_size=3),
        )


@register_decoder("resize-nearest")
def _resize_nearest(in_channels: int, out_channels: int) -> nn.Module:
    return ResizeConv(in_channels, out_channels, mode="nearest")


@register_decoder("resize-bilinear")
def _resize_bilinear(in_channels: int, out_channels: int) -> nn.Module:
    return ResizeConv(in_channels, out_channels, mode="bilinear")


class SubPixelConv(nn.Sequential):
    """Conv to 4C channels, then PixelShuffle(2) (Shi et al. 2016), with ICNR init
    (Aitken et al. 2017): the four sub-pixel kernels start equal, so at initialisation the
    layer is nearest-upsample-then-conv and shows no checkerboard before training."""

    def __init__(self, in_channels: int, out_channels: int):
        conv = nn.Conv2d(in_channels, out_channels * 4, 3)
        with torch.no_grad():
            base = nn.Conv2d(in_channels, out_channels, 3)
            # PixelShuffle reads output channel c from input channels 4c..4c+3.
            conv.weight.copy_(base.weight.repeat_interleave(4, dim=0))
            conv.bias.copy_(base.bias.repeat_interleave(4, dim=0))
        super().__init__(nn.ReflectionPad2d(1), conv, nn.PixelShuffle(2))


@register_decoder("subpixel")
def _subpixel(in_channels: int, out_channels: int) -> nn.Module:
    return SubPixelConv(in_channels, out_channels)
