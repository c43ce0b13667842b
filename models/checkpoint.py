"""Checkpoints that describe themselves: weights, settings, decoder, styles, step, versions.

A checkpoint is Lightning's dict plus a `checkerless` entry; `stylize` and `train --resume`
need nothing else. Everything in it is plain data, so it loads with weights_only=True.

Format 1 is a one-style run (`style_name`, `style_png`); format 2 adds `styles` and
`style_pngs`, every style in order (the first also as `style_name`/`style_png`), and is
written for several styles only: a one-style checkpoint stays one that older code reads.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from models.config import MAX_STYLES, TrainConfig
from models.transformer_net import TransformerNet

if TYPE_CHECKING:
    from models.lightning_module import StyleTransferModule

FORMAT = 2  # the newest this code reads


class CheckpointError(ValueError):
    """A file that is not a checkerless checkpoint we can use."""


def _version(pkg: str) -> str:
    try:
        return version(pkg)
    except PackageNotFoundError:
        return "unknown"


def describe(module: StyleTransferModule) -> dict:
    several = len(module.style_names) > 1
    return {
        "format": 2 if several else 1,
        "config": module.config.to_dict(),
        "decoder": module.config.decoder,
        "style_name": module.style_name,
        "style_png": module.style_png,
        **({"styles": list(module.style_names), "style_pngs": list(module.style_pngs)} if several else {}),
        "content": module.content_label,
        "step": module.global_step,
        "precision": module.trained_precision,  # "32-true" or "bf16-mixed": what it was trained in
        "versions": {
            "checkerless": _version("checkerless"),
            "torch": str(torch.__version__),
            "pytorch_lightning": _version("pytorch-lightning"),
            "python": platform.python_version(),
        },
    }


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    config: TrainConfig
    style_name: str
    style_png: bytes
    content: str
    step: int
    versions: dict
    styles: list[str] = field(default_factory=list)  # every style's name, in order (one for a one-style run)
    style_pngs: list[bytes] = field(default_factory=list)  # their images, as PNG


def read_checkpoint(path: str | Path) -> tuple[CheckpointInfo, dict]:
    """(what the checkpoint says about itself, the raw Lightning dict)."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint file")
    try:
        raw = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and torch errors all mean "not our checkpoint"
        raise CheckpointError(f"{p}: not a checkpoint file ({type(e).__name__})") from None
    meta = raw.get("checkerless") if isinstance(raw, dict) else None
    if not isinstance(meta, dict) or "config" not in meta:
        raise CheckpointError(f"{p}: not a checkerless checkpoint (no 'checkerless' entry)")
    if meta.get("format", 0) > FORMAT:
        raise CheckpointError(f"{p}: written by a newer checkerless (format {meta['format']})")
    try:
        config = TrainConfig.from_stored(meta["config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{p}: its settings are not valid here ({e})") from None
    styles = list(meta.get("styles") or [meta["style_name"]])
    style_pngs = list(meta.get("style_pngs") or [meta["style_png"]])
    if len(styles) != len(style_pngs) or not 1 <= len(styles) <= MAX_STYLES:
        raise CheckpointError(f"{p}: its styles do not fit ({len(styles)} names, {len(style_pngs)} images)")
    info = CheckpointInfo(
        path=p, config=config, style_name=meta["style_name"],
        style_png=meta["style_png"], content=meta.get("content", "builtin"), step=int(meta["step"]),
        versions=meta.get("versions", {}), styles=styles, style_pngs=style_pngs,
    )
    return info, raw


def load_network(path: str | Path) -> tuple[TransformerNet, CheckpointInfo]:
    """The trained network, in eval mode on the CPU, and its description."""
    info, raw = read_checkpoint(path)
    net = TransformerNet.for_config(info.config, styles=len(info.styles))
    state = {k.removeprefix("net."): v for k, v in raw["state_dict"].items() if k.startswith("net.")}
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the {info.config.decoder} network "
                              f"of {len(info.styles)} style(s) ({e})") from None
    return net.eval(), info
