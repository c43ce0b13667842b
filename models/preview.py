"""What a trained network is shown on: the preview (one photo) and the fixed panel (three
photos, scored for artifacts on the PNG's own pixels), and the same panel small, as the batch
probed during training (models/callbacks.py ArtifactProbe). The CLI and the worker use these."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import ImageOps

from models.artifacts import checkerboard_score
from models.builtin_images import BUILTIN_PHOTOS
from models.images import from_tensor, resize_shorter, save_png, to_tensor
from models.preview_size import preview_sizes
from models.probe_row import PROBE_SIZE
from models.stylize import stylize_tensor
from models.transformer_net import TransformerNet

PREVIEW_PHOTO = "chelsea"
PANEL = ("chelsea", "astronaut", "coffee")  # the fixed photos every trained network is shown on
# Their sizes: models/preview_size.py (each function's `size`, None: preview_sizes()).
# During training the panel is probed at 128 px square, one batch, one forward; the artifact
# scores are of astronaut's output alone, the probe image of runs before the panel was probed,
# so their curves compare.
PROBE_SCORED = "astronaut"  # its size: models/probe_row.py PROBE_SIZE, probe_size()


def _stylize(net: TransformerNet, photo: torch.Tensor, style: int | None) -> torch.Tensor:
    return stylize_tensor(net, photo) if style is None else stylize_tensor(net, photo, style=style)


def save_preview(net: TransformerNet, path: str | Path, *, style: int | None = None, size: int | None = None) -> Path:
    """The preview photo stylised with `style` (None: the network's default, style 0)."""
    photo = to_tensor(resize_shorter(BUILTIN_PHOTOS[PREVIEW_PHOTO](), preview_sizes(size)[0]))
    return save_png(_stylize(net, photo, style), path)


def probe_batch(size: int = PROBE_SIZE) -> torch.Tensor:
    """The panel photos as one batch (len(PANEL), 3, size, size), 0..255: each scaled to cover
    the square and centre-cropped (astronaut is square: only scaled)."""
    return torch.stack([to_tensor(ImageOps.fit(BUILTIN_PHOTOS[name](), (size, size))) for name in PANEL])


def stylize_panel(net: TransformerNet, folder: str | Path, *, style: int | None = None,
                  size: int | None = None) -> list[dict]:
    """The network's outputs on the panel with `style` (None: the network's default, style 0):
    name, path, size and period-2/4 scores (dB)."""
    items = []
    for name in PANEL:
        out = _stylize(net, to_tensor(resize_shorter(BUILTIN_PHOTOS[name](), preview_sizes(size)[1])), style)
        path = save_png(out, Path(folder) / f"{name}.png")
        s = checkerboard_score(np.asarray(from_tensor(out)))
        items.append({"name": name, "path": str(path), "width": out.shape[2], "height": out.shape[1],
                      "period2_db": s[2], "period4_db": s[4]})
    return items


def stylize_style_panels(net: TransformerNet, folder: str | Path, *, size: int | None = None) -> list[list[dict]]:
    """One panel per style of the network, style i in `folder/style-i/` (a one-style network:
    one panel, in `folder/style-0/`)."""
    return [stylize_panel(net, Path(folder) / f"style-{i}", style=i, size=size)
            for i in range(getattr(net, "styles", 1))]
