"""The feed-forward transfer network of Johnson et al. 2016, with a choice of decoder and of
the encoder's downsampling, for one style or several (conditional instance norm)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from models.blocks import (
    DECODERS,
    ConditionalInstanceNorm2d,
    ConvLayer,
    ResidualBlock,
    activation,
    build_downsample,
    decoder_label,
    downsample_label,
    norm_for,
    parse_decoder,
    parse_downsample,
)
from models.config import MAX_STYLES, TrainConfig

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
    """conv 9x9/32, two x1/2 downsampling stages to 64 and 128 (Johnson's stride-2 convs by
    default), five residual blocks, two x2 upsampling stages to 64 and 32, conv 9x9 to RGB;
    instance norm, reflection padding.

    `styles` > 1: every instance norm is conditional (Dumoulin et al. 2017): one scale and
    shift per style, all else shared; `select_style` picks the style, or a mix of them, that
    forward applies (style 0 until then). `styles` == 1 is exactly the one-style network (its
    modules and state_dict keys), so every checkpoint written before several styles loads.

    Input and output are RGB in 0..255, float, (B, 3, H, W); any H and W: the input is padded
    (edge replication) up to a multiple of 4 and the output cropped back, so odd sizes keep
    their size and the pixel grid's phase (the checkerboard's) starts at the top-left corner.
    The output is not clamped or smoothed: artifacts are measured, not hidden.
    """

    def __init__(self, *, decoder: str | Sequence[str] = "resize-nearest",
                 downsample: str | Sequence[str] = "stride-conv", styles: int = 1, residual_blocks: int = 5,
                 full_res_blocks: int = 0, filtered_relu: bool = False, lowpass_cutoff: float = 1.0):
        super().__init__()
        if isinstance(styles, bool) or not isinstance(styles, int) or not 1 <= styles <= MAX_STYLES:
            raise ValueError(f"styles must be a whole number between 1 and {MAX_STYLES}, got {styles!r}")
        self.decoder = parse_decoder(decoder)
        self.downsample = parse_downsample(downsample)
        self.styles = styles
        norm = norm_for(styles)
        # Construction order is initialisation order under a seed. The shared parts (encoder,
        # residuals, output conv) are built before the decoder stages so that two networks
        # built with the same seed but different decoders share their initial weights: the
        # A/B comparison rests on this. Every downsampling kind's conv has the same shape and
        # is drawn at the same place, and norms draw nothing: the same seed gives the same
        # weights whatever the downsampling and the number of styles.
        first = ConvLayer(3, 32, kernel_size=9)
        down1, down2 = build_downsample(self.downsample, [(32, 64), (64, 128)])
        # filtered_relu: every nonlinearity below full resolution is a filtered one
        # (models/blocks.py FilteredReLU): no parameters, the same state_dict, the same weights
        # under a seed.
        self.filtered_relu = filtered_relu
        self.encoder = nn.Sequential(
            first, norm(32), nn.ReLU(inplace=True),
            down1, norm(64), activation(filtered_relu),
            down2, norm(128), activation(filtered_relu),
        )
        self.residuals = nn.Sequential(*(ResidualBlock(128, norm_layer=norm, filtered=filtered_relu)
                                         for _ in range(residual_blocks)))
        self.to_rgb = ConvLayer(32, 3, kernel_size=9)
        # Departure from Johnson et al.: the output starts at the ImageNet mean colour, not at
        # black, so short runs spend no steps just brightening the image. Same for every decoder.
        with torch.no_grad():
            self.to_rgb[1].bias.copy_(torch.tensor(IMAGENET_MEAN_255))
        # The first stage's output is at half resolution, the second's at full.
        self.upsample = nn.Sequential(
            *(
                nn.Sequential(DECODERS[name].build(c_in, c_out), norm(c_out), activation(filtered_relu and half))
                for name, (c_in, c_out), half in zip(self.decoder, [(128, 64), (64, 32)], [True, False])
            )
        )

        # Residual blocks at full resolution, after the decoder (0: none, Johnson's network):
        # a place where the network may put a texture's points at any pixel, not once per cell
        # of the residual blocks' grid four pixels apart. Built last, so the weights of every
        # other part are those of the same seed without them.
        self.full_res = nn.Sequential(*(ResidualBlock(32, norm_layer=norm) for _ in range(full_res_blocks)))

        self.selected: tuple[float, ...] = (1.0,) + (0.0,) * (styles - 1)  # style 0
        # The fixed low-pass filters (resize-lowpass, filtered ReLUs, lowpass-stride) cut off at
        # this fraction of their Nyquist frequency (models/blocks.py lowpass_phases): buffers
        # outside the state_dict, so the config that built a network says which it has.
        self.lowpass_cutoff = lowpass_cutoff
        for m in self.modules():
            if hasattr(m, "set_cutoff"):
                m.set_cutoff(lowpass_cutoff)

    @classmethod
    def for_config(cls, config: TrainConfig, styles: int = 1) -> TransformerNet:
        """The network a run's settings describe (training builds it, a checkpoint loads into it)."""
        return cls(decoder=config.decoder_stages, downsample=config.downsample_stages, styles=styles,
                   full_res_blocks=config.full_res_blocks, filtered_relu=config.filtered_relu,
                   lowpass_cutoff=config.lowpass_cutoff)

    # plain Python: torch.jit.script skips them
    __jit_unused_properties__ = ["decoder_label", "downsample_label", "selected_style"]

    @property
    def decoder_label(self) -> str:
        return decoder_label(self.decoder)

    @property
    def downsample_label(self) -> str:
        return downsample_label(self.downsample)

    @property
    def selected_style(self) -> int | None:
        """The one style selected, or None while a mix of several is."""
        ones = [i for i, w in enumerate(self.selected) if w == 1.0]
        return ones[0] if ones else None

    def select_style(self, style: int | Sequence[float]) -> TransformerNet:
        """Pick what forward applies: a style by index (0..styles-1), or non-negative weights
        over the styles, one per style, not all 0 (normalised to sum 1: [1, 1] is a 50/50 mix).
        A one-style network takes 0 or one positive weight. Returns the network."""
        n = self.styles
        if isinstance(style, bool):
            raise ValueError(f"style must be an index or a list of weights, got {style!r}")
        if isinstance(style, numbers.Integral):
            if not 0 <= int(style) < n:
                raise ValueError(f"style {style} does not exist: this network has {n} style(s), 0..{n - 1}")
            mix = [0.0] * n
            mix[int(style)] = 1.0
        else:
            try:
                weights = [float(w) for w in style]
            except (TypeError, ValueError):
                raise ValueError(f"style must be an index or a list of weights, got {style!r}") from None
            if len(weights) != n:
                raise ValueError(f"a mix needs {n} weight(s), one per style of this network, got {len(weights)}")
            if any(not math.isfinite(w) or w < 0 for w in weights):
                raise ValueError(f"mix weights must be finite numbers >= 0, got {weights}")
            total = sum(weights)
            if total <= 0:
                raise ValueError("mix weights cannot all be 0")
            mix = [w / total for w in weights]
        self.selected = tuple(mix)
        for m in self.modules():
            if isinstance(m, ConditionalInstanceNorm2d):
                m.mix.copy_(torch.tensor(mix, dtype=m.mix.dtype))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, 3, H, W)
        h, w = x.shape[-2:]
        # Padded even when nothing is missing (a zero pad changes no value): with no branch on
        # the size, an exported graph (models/export.py) computes the padding for every size.
        x = F.pad(x, (0, inner_size(w) - w, 0, inner_size(h) - h), mode="replicate")
        y = self.to_rgb(self.full_res(self.upsample(self.residuals(self.encoder(x)))))
        return y[..., :h, :w]

    def shared_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights every decoder variant has in common (all but the upsampling stages):
        every downsampling kind has them all, at the same keys and shapes."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("upsample.")}
