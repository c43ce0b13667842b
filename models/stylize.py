"""Stylising images with a trained checkpoint: one forward pass per image, at full size
(in tiles, with whole-image statistics, when the image would not fit a memory budget)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from models.checkpoint import load_network
from models.images import ImageError, list_images, load_tensor, save_png
from models.tiling import DEFAULT_MEMORY_BUDGET, check_tile, choose_tile, stylize_tiled
from models.training import resolve_accelerator
from models.transformer_net import TransformerNet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stylized:
    source: Path
    output: Path
    size: tuple[int, int]  # (width, height)


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


def stylize_tensor(net: TransformerNet, image: torch.Tensor, *, tile: int | None = None,
                   memory_budget: int = DEFAULT_MEMORY_BUDGET) -> torch.Tensor:
    """(3, H, W) 0..255 -> (3, H, W) 0..255, on the network's device; tiled when `tile` is
    given or the whole image would need more than `memory_budget` bytes (models/tiling.py)."""
    device = next(net.parameters()).device
    x = image[None].to(device)
    tile = choose_tile(x.shape[2], x.shape[3], tile=tile, memory_budget=memory_budget)
    if tile is not None:
        return stylize_tiled(net, x, tile)[0].cpu()
    with torch.inference_mode():
        return net(x)[0].cpu()


def stylize_files(checkpoint: str | Path, inputs: Iterable[str | Path], out_dir: str | Path,
                  *, device: str = "auto", tile: int | None = None,
                  memory_budget: int = DEFAULT_MEMORY_BUDGET) -> tuple[list[Stylized], list[tuple[str, str]]]:
    if tile is not None:
        check_tile(tile)
    net, _ = load_network(checkpoint)
    net.to("cuda" if resolve_accelerator(device) == "gpu" else "cpu")
    images, skipped = load_inputs(inputs)  # decode (and fail) before any work
    out = Path(out_dir)
    used: set[str] = set()
    results = []
    for src, image in images:
        name, k = f"{src.stem}.png", 2
        while name in used:
            name, k = f"{src.stem}-{k}.png", k + 1
        used.add(name)
        path = save_png(stylize_tensor(net, image, tile=tile, memory_budget=memory_budget), out / name)
        results.append(Stylized(src, path, (image.shape[2], image.shape[1])))
    return results, skipped
