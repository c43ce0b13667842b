"""Artifacts before any training (the article's first finding), measured over seeds.

Two probes of freshly initialised TransformerNets:
- the checkerboard score of the output on a photograph, per decoder and per-stage mix;
- the constant-input test (Sugawara et al. 2018): a constant signal through the upsampler,
  where any structure in the output is the upsampler's own. Instance norm maps a constant
  image to zeros before the decoder, so the whole network's response to a constant image is
  flat whatever the decoder (and between stages, too); the test therefore drives each
  upsampling layer on its own with constant features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from models.artifacts.score import checkerboard_score
from models.blocks import decoder_label, parse_decoder
from models.transformer_net import TransformerNet

# The article's cases, then the other decoders: deconv in both stages, the last, the first.
DEFAULT_MIXES = (
    "deconv", "resize-nearest,deconv", "deconv,resize-nearest", "resize-nearest",
    "deconv4", "subpixel", "resize-bilinear",
)


@dataclass(frozen=True)
class InitRow:
    decoder: str
    seeds: int
    p2_mean: float
    p2_std: float
    p4_mean: float
    p4_std: float
    constant_periods: tuple[int, ...]  # per stage: period of its response to a constant (0: flat)

    def as_dict(self) -> dict:
        return asdict(self)


def build(decoder: str | Sequence[str], seed: int) -> TransformerNet:
    torch.manual_seed(seed)
    return TransformerNet(decoder=decoder).eval()


def constant_response(net: TransformerNet, *, seed: int, size: int = 16) -> list[np.ndarray]:
    """Each upsampling stage's own output for constant input features (a positive value per
    channel, drawn from the seed), border cut: one (C, 2*size-16, 2*size-16) array per stage."""
    g = torch.Generator().manual_seed(seed)
    outputs = []
    for stage in net.upsample:
        layer = stage[0]  # the decoder layer, before its norm and ReLU
        c_in = next(m for m in layer.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))).in_channels
        features = torch.rand(1, c_in, 1, 1, generator=g).expand(1, c_in, size, size).contiguous()
        with torch.no_grad():
            outputs.append(layer(features)[0, :, 8:-8, 8:-8].numpy())
    return outputs


def spatial_std(image: np.ndarray) -> float:
    """Std over pixels, averaged over channels (a colour cast is not structure)."""
    return float(image.std(axis=(1, 2)).mean())


def pattern_period(image: np.ndarray, *, tol: float = 1e-3) -> int:
    """0 if the image is flat (std below tol), else the smallest period (2, 4, 8) whose
    phase means explain it: the image equals its p x p tiling up to tol."""
    if spatial_std(image) < tol:
        return 0
    _, h, w = image.shape
    for p in (2, 4, 8):
        hh, ww = h - h % p, w - w % p
        cells = image[:, :hh, :ww].reshape(image.shape[0], hh // p, p, ww // p, p).mean(axis=(1, 3))
        tiled = np.tile(cells, (1, hh // p, ww // p))
        if np.abs(tiled - image[:, :hh, :ww]).max() < tol * max(1.0, float(np.abs(image).max())):
            return p
    return -1  # structured but not periodic


def init_table(photo: torch.Tensor, *, decoders: Sequence[str] = DEFAULT_MIXES,
               seeds: Sequence[int] = (0, 1, 2, 3)) -> list[InitRow]:
    """Scores of the initial networks' outputs on `photo` (3, H, W, 0..255) over seeds."""
    rows = []
    for decoder in decoders:
        label = decoder_label(parse_decoder(decoder))
        p2, p4, periods = [], [], []
        for seed in seeds:
            net = build(decoder, seed)
            with torch.no_grad():
                s = checkerboard_score(net(photo[None])[0])
            p2.append(s[2])
            p4.append(s[4])
            periods.append([pattern_period(r) for r in constant_response(net, seed=seed)])
        rows.append(InitRow(
            decoder=label, seeds=len(seeds), p2_mean=float(np.mean(p2)), p2_std=float(np.std(p2)),
            p4_mean=float(np.mean(p4)), p4_std=float(np.std(p4)),
            constant_periods=tuple(max(p[i] for p in periods) for i in range(len(periods[0]))),
        ))
    return rows
