"""Building blocks of the transfer network, the one registry of decoders and the one registry
of the encoder's downsampling layers.

Every upsampling layer doubles height and width; every downsampling layer halves them. The
names are the project's vocabulary (API, CLI, config, reports); see the table in README.md
("Decoders"), docs/decoders.md ("Downsampling and loss pooling") and Odena et al.,
"Deconvolution and Checkerboard Artifacts" (https://distill.pub/2016/deconv-checkerboard/).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from models.vocabulary import (  # noqa: F401 (re-exported)
    DECODER_INFO,
    DOWNSAMPLE_INFO,
    DecoderInfo,
    DownsampleInfo,
    decoder_label,
    downsample_label,
    parse_decoder,
    parse_downsample,
)

NormLayer = Callable[[int], nn.Module]
Info = TypeVar("Info", DecoderInfo, DownsampleInfo)


def instance_norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=True)


class ConditionalInstanceNorm2d(nn.Module):
    """Conditional instance normalisation (Dumoulin, Shlens & Kudlur 2017, "A Learned
    Representation for Artistic Style"): instance norm whose scale and shift are chosen per
    style, `weight` and `bias` (styles, C), one row per style; everything else in the network
    is shared by the styles.

    The row used is a mix: `mix` (styles,) non-negative weights summing to 1, one-hot for one
    style; scale and shift are the mix's weighted sums of the rows (the paper's style
    interpolation). `mix` is a buffer outside the state_dict: what a network computes after
    `TransformerNet.select_style`, also what an export of it bakes in."""

    def __init__(self, channels: int, styles: int, eps: float = 1e-5):
        super().__init__()
        self.styles, self.eps = styles, eps
        self.weight = nn.Parameter(torch.ones(styles, channels))
        self.bias = nn.Parameter(torch.zeros(styles, channels))
        mix = torch.zeros(styles)
        mix[0] = 1.0
        self.register_buffer("mix", mix, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = (self.mix.to(self.weight.dtype) @ self.weight)[None, :, None, None]
        shift = (self.mix.to(self.bias.dtype) @ self.bias)[None, :, None, None]
        return F.instance_norm(x, eps=self.eps) * scale + shift

    def extra_repr(self) -> str:
        return f"{self.weight.shape[1]}, styles={self.styles}, eps={self.eps}"


def norm_for(styles: int) -> NormLayer:
    """Today's instance norm for one style (its modules and state_dict keys unchanged, so old
    checkpoints load); conditional instance norm for several."""
    if styles == 1:
        return instance_norm
    return lambda channels: ConditionalInstanceNorm2d(channels, styles)


class ConvLayer(nn.Sequential):
    """Reflection-padded convolution: borders are mirrored, not zero, so edges stay clean."""

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int, stride: int = 1):
        super().__init__(
            nn.ReflectionPad2d(kernel_size // 2),
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride),
        )


class ResidualBlock(nn.Module):
    """Two 3x3 convs with a skip connection (He et al. 2016, as in Johnson et al. 2016)."""

    def __init__(self, channels: int, *, norm_layer: NormLayer = instance_norm, filtered: bool = False):
        super().__init__()
        self.body = nn.Sequential(
            ConvLayer(channels, channels, kernel_size=3),
            norm_layer(channels),
            activation(filtered),
            ConvLayer(channels, channels, kernel_size=3),
            norm_layer(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


# --- the registries ------------------------------------------------------------------------


@dataclass(frozen=True)
class Registered(Generic[Info]):
    """A layer kind: its row in models/vocabulary.py (name, what the layer does, and for
    decoders its overlap, read through this object: `.name`, `.layer`, `.overlap`) and the
    builder of its module from (in_channels, out_channels)."""

    info: Info
    build: Callable[[int, int], nn.Module]

    def __getattr__(self, attribute: str):  # the vocabulary row's fields
        if attribute == "info" or attribute.startswith("__"):  # not yet set (copy, pickle)
            raise AttributeError(attribute)
        return getattr(self.info, attribute)


def registry(kind: str, vocabulary: Mapping[str, Info]) -> tuple[dict[str, Registered[Info]], Callable]:
    """An empty registry of `kind` layers and the decorator that fills it. A kind is a row in
    models/vocabulary.py plus one builder here, registered by name; a name missing from the
    vocabulary, or registered twice, is a programming error."""
    kinds: dict[str, Registered[Info]] = {}

    def register(name: str) -> Callable:
        def wrap(build: Callable[[int, int], nn.Module]) -> Callable[[int, int], nn.Module]:
            if name in kinds:
                raise ValueError(f"{kind} {name!r} is already registered")
            if name not in vocabulary:
                raise ValueError(f"{kind} {name!r} is not in models/vocabulary.py")
            kinds[name] = Registered(info=vocabulary[name], build=build)
            return build

        return wrap

    return kinds, register


# The decoders: x2 upsampling stages.
DECODERS, register_decoder = registry("decoder", DECODER_INFO)


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


class ZeroOrderHold(nn.Module):
    """A fixed 2x2 box of ones, stride 1, after a x2 upsampling layer (Sugawara, Shiota & Kiya
    2019, "Checkerboard artifacts free convolutional neural networks"): it sums the four
    sub-pixel phases of the layer's kernel at every output pixel, so a constant input gives a
    constant output whatever the learned weights, and the layer's uneven overlap is gone by
    construction. Replication-padded on the right and bottom, so the size is kept. No weights."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, 1, 0, 1), mode="replicate")
        return F.avg_pool2d(x, 2, stride=1) * 4


@register_decoder("deconv-zoh")
def _deconv_zoh(in_channels: int, out_channels: int) -> nn.Module:
    return nn.Sequential(_deconv(in_channels, out_channels), ZeroOrderHold())


# The low-pass of resize-lowpass: taps at the low-resolution pixels within this reach of each
# output pixel, a Kaiser window of this beta (as StyleGAN3's upsampling filters).
LOWPASS_REACH, LOWPASS_BETA = 2, 4.0


def lowpass_phases(reach: int = LOWPASS_REACH, beta: float = LOWPASS_BETA, cutoff: float = 1.0) -> torch.Tensor:
    """(2, 2*reach+1): the weights a x2 upsampler gives the low-resolution neighbours -reach..
    reach of output pixels at phase 0 (a quarter pixel left of the input pixel, as nearest and
    bilinear place them) and phase 1 (a quarter right): a sinc cut off at `cutoff` times the
    input's Nyquist frequency, Kaiser-windowed, each phase corrected to reproduce constants and
    ramps, so that no ripple of period 2 survives on flat or smoothly shaded regions (on flat
    ones, the condition Sugawara et al. state for any upsampler). A cutoff below 1 leaves a
    margin under the Nyquist frequency for the window's transition band (StyleGAN3's), so
    less of what a ReLU makes there folds back."""
    d = torch.arange(-reach, reach + 1, dtype=torch.float64)
    rows = []
    for offset in (-0.25, 0.25):
        t = offset - d  # the neighbour's distance in input pixels
        window = torch.special.i0(beta * torch.sqrt((1 - (t / (reach + 1)) ** 2).clamp(min=0))) / torch.special.i0(
            torch.tensor(beta, dtype=torch.float64))
        w = cutoff * torch.sinc(cutoff * t) * window
        # The least change that makes the phase reproduce constants and ramps exactly (a
        # windowed sinc of this length does neither quite): sum 1, centre of mass at the
        # output pixel's position, so a smooth gradient gets no period-2 ripple either.
        a = torch.stack([torch.ones_like(d), d])
        target = torch.tensor([1.0, offset], dtype=torch.float64)
        w = w - a.T @ torch.linalg.solve(a @ a.T, a @ w - target)
        rows.append(w)
    return torch.stack(rows).float()


def replicate_pad(x: torch.Tensor, n: int) -> torch.Tensor:
    """F.pad(x, (n, n, n, n), mode="replicate"); under torch.compile by index_select, the same
    values with a backward it takes (replication_pad2d_backward fails its layout checks there
    on the maps these filters see). Eager runs F.pad: index_select along the last axis was
    45% of a forward of the default network on a CPU, 27x F.pad's time (docs/performance.md)."""
    if not torch.compiler.is_compiling():
        return F.pad(x, (n, n, n, n), mode="replicate")
    h, w = x.shape[-2:]
    rows = torch.arange(-n, h + n, device=x.device).clamp(0, h - 1)
    cols = torch.arange(-n, w + n, device=x.device).clamp(0, w - 1)
    return x.index_select(-2, rows).index_select(-1, cols)


def lowpass_kernel(reach: int = LOWPASS_REACH, cutoff: float = 1.0) -> torch.Tensor:
    """(2*(2*reach+1),): lowpass_phases interleaved into the one kernel of a x2 upsampler at the
    full rate: tap t weighs the low-resolution pixel i at output pixel o = 2i + t - 2*reach.
    Symmetric, sums to 2 (each phase sums to 1)."""
    phases = lowpass_phases(reach, cutoff=cutoff)
    kernel = torch.zeros(2 * phases.shape[1])
    for p in range(2):
        for d in range(-reach, reach + 1):
            kernel[p - 2 * d + 2 * reach] = phases[p, d + reach]
    return kernel


class LowpassUpsample(nn.Module):
    """x2 upsampling by zero insertion and a fixed low-pass (lowpass_phases): a depthwise
    transposed convolution of stride 2 by lowpass_kernel on each axis. Edge-replicated at low
    resolution. No weights; the filter is a buffer outside the state_dict."""

    def __init__(self, reach: int = LOWPASS_REACH) -> None:
        super().__init__()
        self.reach = reach
        self.set_cutoff(1.0)

    def set_cutoff(self, cutoff: float) -> None:
        """The filter cut off at `cutoff` times the Nyquist frequency (lowpass_phases)."""
        k = lowpass_kernel(self.reach, cutoff)
        self.register_buffer("kernel", (k[:, None] * k[None, :])[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In float32 whatever the autocast: CPUs run depthwise convolutions in bf16 about 6x
        # slower than in float32 (a fixed filter has nothing for the matrix units to do).
        with torch.autocast("cpu", enabled=False):
            return self.float32(x.float()).to(x.dtype)

    def float32(self, x: torch.Tensor) -> torch.Tensor:
        """forward's work on a float32 x, for a caller that has turned the CPU's autocast off."""
        r, c = self.reach, x.shape[1]
        h, w = x.shape[-2:]
        y = replicate_pad(x, r)
        # repeat, not expand: a weight with stride 0 trips torch.compile's layout checks
        y = F.conv_transpose2d(y, self.kernel.repeat(c, 1, 1, 1), stride=2, groups=c)
        return y[..., 4 * r:4 * r + 2 * h, 4 * r:4 * r + 2 * w]


class LowpassDownsample(nn.Module):
    """x1/2 downsampling by the same low-pass as LowpassUpsample, then decimation: that layer's
    adjoint (a strided depthwise convolution by lowpass_kernel), scaled so that a constant
    keeps its value. Edge-replicated. No weights. Even sizes only."""

    def __init__(self, reach: int = LOWPASS_REACH) -> None:
        super().__init__()
        self.reach = reach
        self.set_cutoff(1.0)

    def set_cutoff(self, cutoff: float) -> None:
        """As LowpassUpsample's."""
        self.register_buffer("kernel", downsample_kernel(self.reach, cutoff), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lowpass_downsample(x, self.kernel, self.reach)

    def float32(self, x: torch.Tensor) -> torch.Tensor:
        """As LowpassUpsample's."""
        return _downsample_float32(x, self.kernel, self.reach)


def downsample_kernel(reach: int, cutoff: float) -> torch.Tensor:
    """(1, 1, n, n): LowpassDownsample's 2-D filter."""
    k = lowpass_kernel(reach, cutoff) / 2
    return (k[:, None] * k[None, :])[None, None]


def lowpass_downsample(x: torch.Tensor, kernel: torch.Tensor, reach: int) -> torch.Tensor:
    """LowpassDownsample's work, for layers that hold its kernel as their own buffer."""
    with torch.autocast("cpu", enabled=False):  # float32: as LowpassUpsample
        return _downsample_float32(x.float(), kernel, reach).to(x.dtype)


def _downsample_float32(x: torch.Tensor, kernel: torch.Tensor, reach: int) -> torch.Tensor:
    c = x.shape[1]
    return F.conv2d(replicate_pad(x, 2 * reach), kernel.repeat(c, 1, 1, 1), stride=2, groups=c)


class FilteredReLU(nn.Module):
    """A ReLU evaluated at twice the resolution between the two low-pass filters (Karras et al.
    2021, "Alias-Free Generative Adversarial Networks", their filtered nonlinearity): the
    high frequencies a ReLU creates are removed before they fold back onto the coarse grid, so
    what follows cannot tell where the grid's cells are from them. Even sizes only (inside the
    network every size below full resolution is)."""

    def __init__(self) -> None:
        super().__init__()
        self.up, self.down = LowpassUpsample(), LowpassDownsample()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Float32 from the first filter to the last, the ReLU between them included: under a
        # bf16 autocast, converting the map at twice the resolution to bf16 and back cost more
        # than the ReLU (without them the bf16 training step's peak memory went from 222 to
        # 129 MiB on an Intel Xeon with AMX, and the step a little faster; docs/performance.md).
        with torch.autocast("cpu", enabled=False):
            return self.down.float32(F.relu(self.up.float32(x.float()))).to(x.dtype)


def runs_fp32_filters(net: nn.Module) -> bool:
    """Whether `net` has low-pass filters, which run in float32 under any autocast (above)."""
    return any(isinstance(m, (LowpassUpsample, LowpassDownsample, LowpassStride)) for m in net.modules())


def activation(filtered: bool) -> nn.Module:
    """The nonlinearity of a stage below full resolution."""
    return FilteredReLU() if filtered else nn.ReLU(inplace=True)


class LowpassResizeConv(nn.Sequential):
    """Filtered upsampling, then a stride-1 conv: resize-convolution whose resize removes the
    spectral copies that nearest-neighbour upsampling leaves near the input's sampling rate,
    so what the layer learns cannot stick to the coarse grid through them (Karras et al. 2021)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(LowpassUpsample(), ConvLayer(in_channels, out_channels, kernel_size=3))


@register_decoder("resize-lowpass")
def _resize_lowpass(in_channels: int, out_channels: int) -> nn.Module:
    return LowpassResizeConv(in_channels, out_channels)


# --- the downsampling registry (the encoder's two x1/2 stages) ----------------------------
#
# Every kind is a ConvLayer: reflection pad at index 0, the 3x3 conv (in, out, 3, 3) at index
# 1. The kinds differ only in what forward does around that conv and in its stride, so their
# state_dicts have the same keys and shapes: networks built with one seed share every weight
# whatever the downsampling, and stride-conv is exactly Johnson et al.'s layer (old
# checkpoints load).


DOWNSAMPLES, register_downsample = registry("downsample", DOWNSAMPLE_INFO)


@register_downsample("stride-conv")
def _stride_conv(in_channels: int, out_channels: int) -> nn.Module:
    return ConvLayer(in_channels, out_channels, kernel_size=3, stride=2)


class BlurStride(ConvLayer):
    """3x3 stride-1 conv, then a [1,2,1]x[1,2,1]/16 blur (reflection padded) evaluated every
    second pixel: Zhang 2019's anti-aliased downsampling ("BlurPool", filter size 3) in place
    of a stride-2 conv. The blur is fixed: no weights, not in the state_dict."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, kernel_size=3, stride=1)
        k = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("blur", (k[:, None] * k[None, :] / 16).expand(out_channels, 1, 3, 3).clone(),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self:  # pad, conv (a loop, not super(): torch.jit.script compiles it)
            x = layer(x)
        x = F.pad(x, (1, 1, 1, 1), mode="reflect")
        return F.conv2d(x, self.blur.to(x.dtype), stride=2, groups=x.shape[1])


@register_downsample("blur-stride")
def _blur_stride(in_channels: int, out_channels: int) -> nn.Module:
    return BlurStride(in_channels, out_channels)


class LowpassStride(ConvLayer):
    """3x3 stride-1 conv, then LowpassDownsample: blur-stride with the Kaiser low-pass of
    resize-lowpass and the filtered ReLUs in place of the [1,2,1] blur, whose response is still
    half at the new Nyquist frequency (what lies above it folds back onto the coarse grid)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, kernel_size=3, stride=1)
        # A buffer, not a LowpassDownsample submodule: a Sequential would run it as a stage.
        self.reach = LOWPASS_REACH
        self.set_cutoff(1.0)

    def set_cutoff(self, cutoff: float) -> None:
        """As LowpassUpsample's."""
        self.register_buffer("lowpass", downsample_kernel(self.reach, cutoff), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self:  # pad, conv (a loop, not super(): torch.jit.script compiles it)
            x = layer(x)
        return lowpass_downsample(x, self.lowpass, self.reach)


@register_downsample("lowpass-stride")
def _lowpass_stride(in_channels: int, out_channels: int) -> nn.Module:
    return LowpassStride(in_channels, out_channels)


class ResizeDown(ConvLayer):
    """Resize to half (2x2 average pooling: area resampling by 2), then a 3x3 stride-1 conv:
    the mirror image of the decoder's resize-convolution."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, kernel_size=3, stride=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(x, 2)
        for layer in self:  # pad, conv
            x = layer(x)
        return x


@register_downsample("resize-down")
def _resize_down(in_channels: int, out_channels: int) -> nn.Module:
    return ResizeDown(in_channels, out_channels)


def build_downsample(names: Sequence[str], channels: Sequence[tuple[int, int]]) -> list[nn.Module]:
    return [DOWNSAMPLES[n].build(c_in, c_out) for n, (c_in, c_out) in zip(names, channels)]
