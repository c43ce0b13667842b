"""The main job on the embedded default: train decoder variants alike, stylise one photo with
each, score the artifacts and draw them side by side at pixel zoom."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.artifacts import checkerboard_score
from models.artifacts.figures import artifact_curves, side_by_side
from models.checkpoint import load_network
from models.config import DEFAULTS, TrainConfig
from models.builtin_images import BUILTIN_PHOTOS
from models.images import from_tensor, save_png, to_tensor
from models.stylize import stylize_tensor
from models.training import train


@dataclass(frozen=True)
class Variant:
    decoder: str
    checkpoint: Path
    image: Path
    scores: dict[int, float]
    seconds: float
    final_loss: float
    curve: list[dict[str, float]]  # the probe's rows over training (models/probe_row.py), as dicts


@dataclass(frozen=True)
class DemoResult:
    variants: list[Variant]
    figure: Path
    curves: Path
    photo: str


def run_demo(*, out_dir: str | Path, config: TrainConfig, style: str = "ihc",
             decoders: Sequence[str] = ("deconv", DEFAULTS.decoder), photo: str = "chelsea",
             device: str = "auto", progress: bool = True, probe_every: int = 10) -> DemoResult:
    """Train one network per decoder with otherwise identical settings (same seed: same
    shared initial weights and data order), then compare them on a built-in photo."""
    if len(set(decoders)) < 2:
        raise ValueError("a comparison needs at least two different decoders")
    if photo not in BUILTIN_PHOTOS:
        raise ValueError(f"unknown photo {photo!r}; built-in: {', '.join(BUILTIN_PHOTOS)}")
    out = Path(out_dir)
    content = to_tensor(BUILTIN_PHOTOS[photo]())
    variants, outputs = [], {}
    for decoder in decoders:
        cfg = config.replace(decoder=decoder)
        run_dir = out / cfg.decoder.replace(",", "+")
        result = train(cfg, out_dir=run_dir, style=style, device=device, progress=progress, probe_every=probe_every)
        net, _ = load_network(result.checkpoint)
        styled = stylize_tensor(net, content)
        outputs[cfg.decoder] = styled
        variants.append(Variant(
            decoder=cfg.decoder, checkpoint=result.checkpoint, image=save_png(styled, run_dir / f"{photo}.png"),
            # Scored on the PNG's pixels: what the user sees.
            scores=checkerboard_score(np.asarray(from_tensor(styled))), seconds=result.seconds,
            final_loss=result.final.get("loss", float("nan")), curve=[row.to_dict() for row in result.artifacts],
        ))
    figure = side_by_side(
        outputs, out / "comparison.png",
        title=f"{photo}, style {style}: {config.steps} steps at {config.size}px, seed {config.seed}, only the decoder differs",
    )
    curves = artifact_curves({v.decoder: v.curve for v in variants}, out / "artifact_curves.png",
                             title=f"artifacts over training (probe: astronaut 128px), seed {config.seed}")
    return DemoResult(variants=variants, figure=figure, curves=curves, photo=photo)
