"""Every measure of a trained network in one call, on the fixed panel of photos: what the
defaults sweep (scripts/sweep_defaults.py) reports for each run.

- style_taken: how much of the photos' style distance to the style the outputs close, by the
  yardstick (models/quality.py): 1 - d(output, style) / d(photo, style), the mean over the
  panel at the scale the style was trained at (the photos at the training size, the style at
  its own trained size). 1 is the style's Grams exactly; 0 is no closer than the photo.
- style_distance, content_distance: the yardstick's raw numbers behind it (lower is better).
- artifact_p2/p4/p8: the checkerboard score (models/artifacts/score.py) of the outputs, and
  excess_p2/p4/p8: the same minus the photos' own score, photo by photo (> 0: the network
  adds power at that period that the photo did not have), each the mean over the panel.
- locked_p2/p4/p8: the part of the outputs' checkerboard score the network's grid holds in
  place: the score minus that of the grid-averaged output (models/artifacts/equivariance.py
  grid_averaged), each the mean over the panel. A lattice tied to the grid shows here; a
  style's own fine texture, which follows the content, does not (it does in excess_p*: the
  built-in styles themselves score up to 15 dB above the photos at these periods).
- eq_t1..eq_t4: shift equivariance (models/artifacts/equivariance.py), the mean over the panel.

The artifact measures run on the panel at `size` (default 256: finer spectral bins than the
training crops); outputs are measured as PNGs hold them (clamped and rounded).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import ImageOps

from models.artifacts.equivariance import grid_averaged, shift_equivariance
from models.artifacts.score import PERIODS, checkerboard_score
from models.builtin_images import BUILTIN_PHOTOS
from models.images import from_tensor, to_tensor
from models.preview import PANEL
from models.quality import QUALITY_MEASURE, distances, style_grams, yardstick
from models.transformer_net import TransformerNet

MEASURE_SIZE = 256


def panel(size: int) -> torch.Tensor:
    """The panel photos as one batch (N, 3, size, size), 0..255, each fitted to the square."""
    return torch.stack([to_tensor(ImageOps.fit(BUILTIN_PHOTOS[name](), (size, size))) for name in PANEL])


def photo_scores(size: int = MEASURE_SIZE) -> list[dict[int, float]]:
    """The panel photos' own checkerboard scores: the level a network's output is held to."""
    return [checkerboard_score(np.asarray(from_tensor(p))) for p in panel(size)]


@torch.no_grad()
def measure_network(net: TransformerNet, style_images: list[torch.Tensor], *, train_size: int,
                    size: int = MEASURE_SIZE) -> dict[str, float | str]:
    """The measures above for `net` (eval mode, CPU or its device), with each style of a
    several-style network selected in turn against its own style image (the mean over
    styles). `style_images` are (1, 3, H, W) 0..255 at the size each was trained at."""
    device = next(net.parameters()).device
    ruler = yardstick().to(device)
    small, large = panel(train_size).to(device), panel(size).to(device)
    photos_own = photo_scores(size)
    was = net.selected
    rows = []
    for i, style in enumerate(style_images):
        if net.styles > 1:
            net.select_style(i)
        grams = style_grams(ruler, style.to(device))
        out = net(small)
        d_out = distances(ruler, out, small, grams)
        d_photo = distances(ruler, small, small, grams)["style_distance"]
        big = net(large)
        scores = [checkerboard_score(np.asarray(from_tensor(o))) for o in big]
        unlocked = [checkerboard_score(np.asarray(from_tensor(o))) for o in grid_averaged(net, large)]
        row: dict[str, float] = {
            "style_taken": float((1 - d_out["style_distance"] / d_photo).mean()),
            "style_distance": float(d_out["style_distance"].mean()),
            "content_distance": float(d_out["content_distance"].mean()),
        }
        for p in PERIODS:
            row[f"artifact_p{p}"] = float(np.mean([s[p] for s in scores]))
            row[f"excess_p{p}"] = float(np.mean([s[p] - own[p] for s, own in zip(scores, photos_own)]))
            row[f"locked_p{p}"] = float(np.mean([s[p] - u[p] for s, u in zip(scores, unlocked)]))
        row.update({f"eq_t{k}": v for k, v in shift_equivariance(net, large).items()})
        rows.append(row)
    if net.styles > 1:
        net.select_style(list(was))
    return {"quality_measure": QUALITY_MEASURE, **{k: float(np.mean([r[k] for r in rows])) for k in rows[0]}}
