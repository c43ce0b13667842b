"""The feed-forward transfer network of Johnson et al. 2016, with a choice of decoder."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from models.blocks import DECODERS, ConvLayer, ResidualBlock, decoder_label, instance_norm, parse_decoder

# Two stride-2 convs down, two x2 stages up: sizes must be multiples of this inside the net.
SIZE_MULTIPLE = 4
# Below this, the 3x3 reflection padding at 1/4 scale has nothing to mirror.
MIN_INNER_SIZE = 8
IMAGENET_MEAN_255 = (123.675, 116.28, 103.53)


def inner_size(n: int, multiple: int = SIZE_MULTIPLE, minimum: int = MIN_INNER_SIZE) -> int:
    """A side of the image inside the network: n rounded up to a multiple, and at least the
    minimum. (Arguments, not globals, for torch.jit.script. Floor division of non-negative
    numbers only: ONNX's integer Div truncates, so -(-n // 4) would export the wrong size.)"""
    return max(minimum, (n + multiple - 1) // multiple * multiple)


class TransformerNet(nn.Module):
    """conv 9x9/32, stride-2 convs to 64 and 128, five residual blocks, two x2 upsampling
    stages to 64 and 32, conv 9x9 to RGB; instance norm, reflection padding.

    Input and output are RGB in 0..255, float, (B, 3, H, W); any H and W: the input is padded
    (edge replication) up to a multiple of 4 and the output cropped back, so odd sizes keep
    their size and the pixel grid's phase (the checkerboard's) starts at the top-left corner.
    The output is not clamped or smoothed: artifacts are measured, not hidden.
    """

    def __init__(self, *, decoder: str | Sequence[str] = "resize-nearest", residual_blocks: int = 5):
        super().__init__()
        self.decoder = parse_decoder(decoder)
        # Construction order is initialisation order under a seed. The shared parts (encoder,
        # residuals, output conv) are built before the decoder stages so that two networks
        # built with the same seed but different decoders share their initial weights: the
        # A/B comparison rests on this.
        self.encoder = nn.Sequential(
            ConvLayer(3, 32, kernel_size=9), instance_norm(32), nn.ReLU(inplace=True),
            ConvLayer(32, 64, kernel_size=3, stride=2), instance_norm(64), nn.ReLU(inplace=True),
            ConvLayer(64, 128, kernel_size=3, stride=2), instance_norm(128), nn.ReLU(inplace=True),
        )
        self.residuals = nn.Sequential(*(ResidualBlock(128) for _ in range(residual_blocks)))
        self.to_rgb = ConvLayer(32, 3, kernel_size=9)
        # Departure from Johnson et al.: the output starts at the ImageNet mean colour, not at
        # black, so short runs spend no steps just brightening the image. Same for every decoder.
        with torch.no_grad():
            self.to_rgb[1].bias.copy_(torch.tensor(IMAGENET_MEAN_255))
        self.upsample = nn.Sequential(
            *(
                nn.Sequential(DECODERS[name].build(c_in, c_out), instance_norm(c_out), nn.ReLU(inplace=True))
                for name, (c_in, c_out) in zip(self.decoder, [(128, 64), (64, 32)])
            )
        )

    __jit_unused_properties__ = ["decoder_label"]  # plain Python: torch.jit.script skips it

    @property
    def decoder_label(self) -> str:
        return decoder_label(self.decoder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, 3, H, W)
        h, w = x.shape[-2:]
        # Padded even when nothing is missing (a zero pad changes no value): with no branch on
        # the size, an exported graph (models/export.py) computes the padding for every size.
        x = F.pad(x, (0, inner_size(w) - w, 0, inner_size(h) - h), mode="replicate")
        y = self.to_rgb(self.upsample(self.residuals(self.encoder(x))))
        return y[..., :h, :w]

    def shared_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights every decoder variant has in common (all but the upsampling stages)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("upsample.")}
