"""Stylising images too large to run whole, in tiles that agree with the whole-image result.

A TransformerNet is local (convolutions) except for its instance norms, whose statistics are
taken over the whole image. Tiles that normalised with their own statistics would each get a
different colour cast and show seams, so the statistics here are the whole image's:

1. the encoder (full and half resolution) runs tile by tile, once per instance norm, each
   pass summing that norm's per-channel statistics over the tiles' cores with the earlier
   norms' statistics fixed; a last pass writes the encoder's output, a quarter-resolution map;
2. the residual blocks run on that whole map (16x fewer pixels than the image), convolved in
   bands so no padded copy of the map is made;
3. the decoder and the output layer run tile by tile from that map, again once per norm.

Each tile carries a halo wider than the layers' reach, and tiles start on multiples of 4, so
strided and upsampling layers see the same pixel grid as the whole image: the result equals
the untiled one up to float rounding. About 1.5x the arithmetic of one whole pass.

Precision: with `precision="bf16"` the layers run under bf16 autocast (models/hardware.py), as
the whole-image pass does, while everything that spans tiles stays wide: each norm's statistics
are summed in fp64 and applied as fp32 scales and shifts, and the maps kept between stages (the
encoder's output, the residual blocks' maps, the output) are fp32.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from models.blocks import ConditionalInstanceNorm2d, ConvLayer, FilteredReLU, ResidualBlock
from models.config import STYLIZE_MEMORY_BUDGET_GIB
from models.hardware import autocast, check_precision
from models.transformer_net import MIN_INNER_SIZE, SIZE_MULTIPLE, TransformerNet

DEFAULT_TILE = 512  # input pixels per tile side (a multiple of 4)
MIN_TILE = 64
# Input pixels: the encoder reaches 7 with stride-2 convs (9x9, then two stride-2 3x3 convs),
# 10 with blur-stride (each 3x3 conv then a 3x3 blur) or resize-down (2x2 pool, 3x3 conv),
# 22 with lowpass-stride (each 3x3 conv then the low-pass's 5 pixels of its input); filtered
# ReLUs add about 3 pixels of their own resolution each (the low-pass's reach up, then down):
# 6 input pixels at half resolution, 12 at a quarter.
ENCODER_HALO = 40
DECODER_HALO = 8  # quarter-resolution pixels: the decoder and the 9x9 output conv reach 3, a filtered ReLU 2 more
# Peak memory of an untiled forward pass per input pixel, fp32, measured with
# `checkerless bench --tiling` (docs/performance.md): the 32-channel full-resolution maps
# and the reflection-padded copies dominate.
UNTILED_BYTES_PER_PIXEL = 1024
DEFAULT_MEMORY_BUDGET = int(STYLIZE_MEMORY_BUDGET_GIB * 2**30)


def untiled_bytes(height: int, width: int) -> int:
    return UNTILED_BYTES_PER_PIXEL * height * width


def check_tile(tile: int) -> int:
    if tile < MIN_TILE or tile % SIZE_MULTIPLE:
        raise ValueError(f"tile must be a multiple of {SIZE_MULTIPLE} and at least {MIN_TILE}, got {tile}")
    return tile


def choose_tile(height: int, width: int, *, tile: int | None = None, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> int | None:
    """The tile size to use: `tile` if given, else DEFAULT_TILE when the whole image would not
    fit in `memory_budget`, else None (run whole)."""
    if tile is not None:
        return check_tile(tile)
    return DEFAULT_TILE if untiled_bytes(height, width) > memory_budget else None


class _Stats:
    """Per-channel sums over tile cores, then the mean and inverse std of the whole map."""

    def __init__(self) -> None:
        self.n = 0
        self.s: torch.Tensor | None = None
        self.ss: torch.Tensor | None = None

    def add(self, x: torch.Tensor) -> None:  # (1, C, h, w)
        for band in x.split(32, dim=2):  # fp64 sums, without an fp64 copy of a whole map
            band = band.double()
            s, ss = band.sum(dim=(0, 2, 3)), (band * band).sum(dim=(0, 2, 3))
            self.s, self.ss = (s, ss) if self.s is None else (self.s + s, self.ss + ss)
        self.n += x.shape[2] * x.shape[3]

    def frozen(self, norm: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, shift) with norm(x) = x * scale + shift under the whole map's statistics."""
        mean = self.s / self.n
        var = (self.ss / self.n - mean * mean).clamp_min(0)
        inv = 1 / torch.sqrt(var + norm.eps)
        scale, shift = inv, -mean * inv
        affine = _affine(norm)
        if affine is not None:
            w, b = affine
            scale, shift = scale * w, shift * w + b
        dtype = norm.weight.dtype if affine is not None else torch.float32
        return scale.to(dtype).view(1, -1, 1, 1), shift.to(dtype).view(1, -1, 1, 1)


def _is_norm(layer: nn.Module) -> bool:
    return isinstance(layer, (nn.InstanceNorm2d, ConditionalInstanceNorm2d))


def _affine(norm: nn.Module) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The norm's per-channel scale and shift (C,), fp64: a conditional norm's are the selected
    mix of its styles' rows (what its forward uses); None for a norm without them."""
    if isinstance(norm, ConditionalInstanceNorm2d):
        mix = norm.mix.double()
        return mix @ norm.weight.double(), mix @ norm.bias.double()
    if norm.affine:
        return norm.weight.double(), norm.bias.double()
    return None


def _tiles(height: int, width: int, tile: int) -> Iterator[tuple[int, int, int, int]]:
    for y in range(0, height, tile):
        for x in range(0, width, tile):
            yield y, min(y + tile, height), x, min(x + tile, width)


def _run_tiled(layers: list[nn.Module], source: torch.Tensor, tile: int, halo: int,
               frozen: dict[int, tuple[torch.Tensor, torch.Tensor]], stop: int | None,
               out: torch.Tensor | None) -> _Stats | None:
    """Run `layers` over `source` tile by tile. Norms at indices in `frozen` use those whole-map
    statistics; with `stop`, sum the statistics of the input of norm `stop` over the tile cores
    and return them; else write each core of the result into `out`."""
    stats = _Stats() if stop is not None else None
    _, _, height, width = source.shape
    for y0, y1, x0, x1 in _tiles(height, width, tile):
        ey0, ey1, ex0, ex1 = max(0, y0 - halo), min(height, y1 + halo), max(0, x0 - halo), min(width, x1 + halo)
        h = source[:, :, ey0:ey1, ex0:ex1]
        for i, layer in enumerate(layers):
            if i == stop:
                break
            if i in frozen:
                a, b = frozen[i]
                h = h * a + b
            else:
                h = layer(h)
        # The core of this tile at the current resolution (strides keep the grid: starts are x4).
        s = h.shape[2] / (ey1 - ey0)
        cy0, cy1, cx0, cx1 = (round((v - o) * s) for v, o in ((y0, ey0), (y1, ey0), (x0, ex0), (x1, ex0)))
        core = h[:, :, cy0:cy1, cx0:cx1]
        if stats is not None:
            stats.add(core)
        else:
            out[:, :, round(y0 * s):round(y1 * s), round(x0 * s):round(x1 * s)] = core
    return stats


def _tiled_stage(layers: list[nn.Module], source: torch.Tensor, out_channels: int, out_scale: float,
                 tile: int, halo: int) -> torch.Tensor:
    """Every norm's whole-map statistics, one pass each, then the stage's output map."""
    frozen: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for i, layer in enumerate(layers):
        if _is_norm(layer):
            frozen[i] = _run_tiled(layers, source, tile, halo, frozen, i, None).frozen(layer)
    _, _, height, width = source.shape
    out = source.new_empty(1, out_channels, round(height * out_scale), round(width * out_scale))
    _run_tiled(layers, source, tile, halo, frozen, None, out)
    return out


def _conv_in_bands(conv: ConvLayer, x: torch.Tensor, band: int = 64) -> torch.Tensor:
    """A reflection-padded stride-1 conv over a whole map, in horizontal bands: the same
    result as conv(x) without the padded copy of the whole map."""
    pad = conv[0].padding[0]
    _, _, height, _ = x.shape
    out = None
    for r0 in range(0, height, band):
        r1 = min(height, r0 + band)
        lo, hi = max(0, r0 - pad), min(height, r1 + pad)
        part = F.pad(x[:, :, lo:hi], (pad, pad, pad - (r0 - lo), pad - (hi - r1)), mode="reflect")
        y = F.conv2d(part, conv[1].weight, conv[1].bias)
        if out is None:
            out = x.new_empty(1, y.shape[1], height, y.shape[3])
        out[:, :, r0:r1] = y
    return out


def _norm_(x: torch.Tensor, norm: nn.Module) -> torch.Tensor:
    stats = _Stats()
    stats.add(x)
    a, b = stats.frozen(norm)
    return x.mul_(a).add_(b)


def _filtered_in_bands(act: FilteredReLU, x: torch.Tensor, band: int = 64, halo: int = 6) -> torch.Tensor:
    """A filtered ReLU over a whole map, in horizontal bands with a halo beyond its reach: the
    same result without the map at twice the resolution."""
    _, _, height, _ = x.shape
    out = torch.empty_like(x)
    for r0 in range(0, height, band):
        r1 = min(height, r0 + band)
        lo, hi = max(0, r0 - halo), min(height, r1 + halo)
        out[:, :, r0:r1] = act(x[:, :, lo:hi])[:, :, r0 - lo:r1 - lo]
    return out


def _residual_whole(block: ResidualBlock, x: torch.Tensor) -> torch.Tensor:
    conv1, norm1, act, conv2, norm2 = block.body
    h = _norm_(_conv_in_bands(conv1, x), norm1)
    h = _filtered_in_bands(act, h) if isinstance(act, FilteredReLU) else h.relu_()
    h = _norm_(_conv_in_bands(conv2, h), norm2)
    return h.add_(x)


def _flatten(module: nn.Module) -> list[nn.Module]:
    if isinstance(module, nn.Sequential) and not isinstance(module, ConvLayer):
        return [leaf for child in module for leaf in _flatten(child)]
    return [module]


@torch.inference_mode()
def stylize_tiled(net: TransformerNet, image: torch.Tensor, tile: int = DEFAULT_TILE, *,
                  precision: str = "32") -> torch.Tensor:
    """(1, 3, H, W) 0..255 -> (1, 3, H, W) float32, as net(image) would give, holding only tiles
    of the full-resolution maps. Each decoder stage must be local (every registered one is).
    `precision`: "32", or "bf16" for the layers under bf16 autocast (statistics stay fp64)."""
    check_tile(tile)
    if check_precision(precision) == "auto":
        raise ValueError("stylize_tiled takes a resolved precision, 32 or bf16 (models/hardware.py resolve_precision)")
    with autocast(precision, image.device):
        return _stylize_tiled(net, image.float(), tile)


def _stylize_tiled(net: TransformerNet, image: torch.Tensor, tile: int) -> torch.Tensor:
    h, w = image.shape[-2:]
    ph = max(MIN_INNER_SIZE, -(-h // SIZE_MULTIPLE) * SIZE_MULTIPLE) - h
    pw = max(MIN_INNER_SIZE, -(-w // SIZE_MULTIPLE) * SIZE_MULTIPLE) - w
    x = F.pad(image, (0, pw, 0, ph), mode="replicate") if ph or pw else image
    x = _tiled_stage(_flatten(net.encoder), x, 128, 1 / SIZE_MULTIPLE, tile, ENCODER_HALO)
    for block in net.residuals:
        x = _residual_whole(block, x)
    decoder = _flatten(net.upsample) + [net.to_rgb]
    y = _tiled_stage(decoder, x, 3, SIZE_MULTIPLE, tile // SIZE_MULTIPLE, DECODER_HALO)
    return y[..., :h, :w]
