"""Stylising images with a trained checkpoint: one forward pass per image, at full size
(in tiles, with whole-image statistics, when the image would not fit a memory budget), with
a choice of style on a several-style network, a strength, and the photo's colours kept or not
(models/stylize_options.py names the options; docs/stylising.md explains them).

Precision: the forward runs in fp32 or under bf16 autocast (models/hardware.py), chosen for the
machine that stylises, whatever the checkpoint was trained in; the output is float32 either way.
The commands and the stylise server default to `auto` (bf16 where the machine has bf16 matrix
units, docs/performance.md); the functions here that take a loaded network default to fp32, so
the measurements built on them (previews, artifact scores, the training probe) stay exact."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from models.blocks import runs_fp32_filters
from models.checkpoint import load_network
from models.colour import apply_colors
from models.images import ImageError, list_images, load_tensor, save_png
from models.tiling import DEFAULT_MEMORY_BUDGET, check_tile, choose_tile, stylize_tiled
from models.stylize_options import DEFAULT_COLORS, DEFAULT_STRENGTH, check_colors, check_strength
from models.hardware import autocast, check_precision, resolve_accelerator, resolve_precision
from models.transformer_net import TransformerNet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stylized:
    source: Path
    output: Path
    size: tuple[int, int]  # (width, height)
    precision: str  # what it ran in, "32" or "bf16" (`stylize_precision`, by the machine and the network)


def load_inputs(inputs: Iterable[str | Path]) -> tuple[list[tuple[Path, torch.Tensor]], list[tuple[str, str]]]:
    """Decode every input once: files as given (a bad one is an error), folders searched
    recursively (what cannot be read there is skipped, with the reason)."""
    images: list[tuple[Path, torch.Tensor]] = []
    skipped: list[tuple[str, str]] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            for f in list_images(p):
                try:
                    images.append((f, load_tensor(f)))
                except ImageError as e:
                    skipped.append((str(f), str(e)))
        elif p.is_file():
            images.append((p, load_tensor(p)))
        else:
            raise ImageError(f"{p}: no such file or folder")
    if not images:
        raise ImageError("no readable images among the inputs")
    return images, skipped


def select(net: TransformerNet, style: int | Sequence[float] | None) -> None:
    """Set the network's style: an index, weights over its styles (a mix), or None for its
    default (style 0). A network without several styles takes None, 0 or one weight only."""
    if hasattr(net, "select_style"):
        net.select_style(0 if style is None else style)
        return
    # A network from before several-style networks existed: it has exactly one style.
    if style is None or (not isinstance(style, bool) and isinstance(style, int) and style == 0):
        return
    if not isinstance(style, int) and len(style) == 1 and style[0] > 0:
        return
    raise ValueError(f"this network has one style: style 0 (or a mix of one weight) only, got {style!r}")


def finish(stylised: torch.Tensor, photo: torch.Tensor, *, strength: float = DEFAULT_STRENGTH,
           colors: str = DEFAULT_COLORS) -> torch.Tensor:
    """The network's output with the photo's colours kept (as `colors` says), then blended toward
    the photo by `strength`: out = photo + strength * (recoloured - photo), in pixel space, with
    the recoloured image clamped to 0..255 first (the picture strength 1 shows), so strength 0.5
    is halfway between the photo and that picture. strength 1 and colors "style" return the
    network's output untouched (unclamped)."""
    strength, colors = check_strength(strength), check_colors(colors)
    out = apply_colors(stylised, photo, colors)
    if strength == 1.0:
        return out
    photo = photo.to(out.dtype)
    return photo + strength * (out.clamp(0, 255) - photo)


def stylize_precision(precision: str, device: torch.device | str, net: nn.Module | None = None) -> str:
    """"bf16" or "32": what `precision` (auto, 32 or bf16) means for stylising `net` on `device`.
    auto: bf16 on a CUDA GPU; on a CPU with bf16 matrix units, bf16 unless the network has
    low-pass filters (filtered ReLUs, resize-lowpass: today's defaults), which stay in float32
    there (models/blocks.py) and whose conversions cost about what bf16 saves: such a network
    stylised at 0.91x fp32's speed on an Intel Xeon with AMX, 1.03x since the filtered ReLUs
    convert once (docs/performance.md); else fp32."""
    on_cpu = torch.device(device).type != "cuda"
    resolved = resolve_precision(precision, "cpu" if on_cpu else "gpu")
    if precision == "auto" and on_cpu and net is not None and runs_fp32_filters(net):
        return "32"
    return resolved


def forward(net: TransformerNet, x: torch.Tensor, precision: str = "32") -> torch.Tensor:
    """net(x) under `precision` (resolved: "32" or "bf16"), as float32 (B, 3, H, W)."""
    with torch.inference_mode(), autocast(precision, x.device):
        return net(x).float()


def stylize_tensor(net: TransformerNet, image: torch.Tensor, *, style: int | Sequence[float] | None = None,
                   strength: float = DEFAULT_STRENGTH, colors: str = DEFAULT_COLORS, tile: int | None = None,
                   memory_budget: int = DEFAULT_MEMORY_BUDGET, precision: str = "32") -> torch.Tensor:
    """(3, H, W) 0..255 -> (3, H, W) 0..255 float32 on the CPU; tiled when `tile` is given or the
    whole image would need more than `memory_budget` bytes (models/tiling.py). `style`: None (the
    network's default, style 0), an index, or weights over its styles; `strength` in [0, 1]
    and `colors` (models/stylize_options.py) are applied to the output (`finish`). `precision`:
    auto, 32 or bf16 (`stylize_precision`); fp32 unless asked, so measurements stay exact."""
    strength, colors = check_strength(strength), check_colors(colors)
    select(net, style)
    device = next(net.parameters()).device
    precision = stylize_precision(precision, device, net)
    x = image[None].to(device)
    tile = choose_tile(x.shape[2], x.shape[3], tile=tile, memory_budget=memory_budget)
    if tile is not None:
        y = stylize_tiled(net, x, tile, precision=precision)[0].cpu()
    else:
        y = forward(net, x, precision)[0].cpu()
    if strength == 1.0 and colors == "style":
        return y
    return finish(y, image.to(y.dtype), strength=strength, colors=colors)


def stylize_files(checkpoint: str | Path, inputs: Iterable[str | Path], out_dir: str | Path,
                  *, style: int | Sequence[float] | None = None, strength: float = DEFAULT_STRENGTH,
                  colors: str = DEFAULT_COLORS, device: str = "auto", tile: int | None = None,
                  memory_budget: int = DEFAULT_MEMORY_BUDGET,
                  precision: str = "auto") -> tuple[list[Stylized], list[tuple[str, str]]]:
    """Stylise image files and folders into PNGs in `out_dir`, with the options of
    `stylize_tensor` (`precision` auto by default: chosen for this machine, as the CLI does).
    Every option is checked, and every input decoded, before any work."""
    if tile is not None:
        check_tile(tile)
    strength, colors, precision = check_strength(strength), check_colors(colors), check_precision(precision)
    where = "cuda" if resolve_accelerator(device) == "gpu" else "cpu"
    net, _ = load_network(checkpoint)
    precision = stylize_precision(precision, where, net)
    select(net, style)  # a bad index or mix fails before any image is read
    net.to(where)
    images, skipped = load_inputs(inputs)  # decode (and fail) before any work
    out = Path(out_dir)
    used: set[str] = set()
    results = []
    for src, image in images:
        name, k = f"{src.stem}.png", 2
        while name in used:
            name, k = f"{src.stem}-{k}.png", k + 1
        used.add(name)
        y = stylize_tensor(net, image, style=style, strength=strength, colors=colors, tile=tile,
                           memory_budget=memory_budget, precision=precision)
        path = save_png(y, out / name)
        results.append(Stylized(src, path, (image.shape[2], image.shape[1]), precision))
    return results, skipped
