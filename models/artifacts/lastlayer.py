"""Does only the last upsampling layer decide whether the spectrum matches a photograph's?
(Chandrasegaran, Tran & Cheung, "A Closer Look at Fourier Spectrum Discrepancies for
CNN-generated Images Detection", CVPR 2021: their high-frequency discrepancies go away when
only the last upsampling layer is changed, whatever the layers before it.)

We test it on our own networks with the per-stage decoder mixes: the same seed gives every
mix the same shared weights, so two mixes differ only in their decoder stages. For each
network's output on a photograph we take the azimuthally integrated spectrum (Durall et al.
2020) and compare it with the photograph's own over the high-frequency band:

    discrepancy_db = mean over the rings in the band of 10 log10(P_out / P_photo)
                     minus the same mean over a low band (0.02..0.125 cycles/pixel)

so a network that only dims or blurs the whole image uniformly is not counted; what is left
is how much more (positive) or less (negative) high-frequency power the output has, relative
to its low frequencies, than the photograph. 0 dB: the tail matches. Beside it the fitted
decay (Dzanic et al. 2020) of the output and of the photograph.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from models.artifacts.spectra import DECAY_BAND, radial_power_spectrum, spectral_decay

LOW_BAND = (0.02, 0.125)
# The article's cases: deconv in both stages, in the last only, in the first only, in neither.
LAST_LAYER_MIXES = ("deconv", "resize-nearest,deconv", "deconv,resize-nearest", "resize-nearest")


@dataclass(frozen=True)
class SpectrumRow:
    decoder: str
    last_layer: str
    images: int
    discrepancy_db: float  # mean over images
    discrepancy_std: float
    decay: float  # mean fitted decay of the outputs
    photo_decay: float  # the photographs' own

    def as_dict(self) -> dict:
        return asdict(self)


def _band_mean_db(freqs: np.ndarray, power: np.ndarray, band: tuple[float, float]) -> float:
    keep = (freqs >= band[0]) & (freqs <= band[1])
    return float(np.mean(10 * np.log10(power[keep] + 1e-20)))


def spectral_discrepancy(image, reference, *, band: tuple[float, float] = DECAY_BAND) -> float:
    """High-band dB excess of `image` over `reference`, each relative to its own low band
    (see the module docstring). Same-size images."""
    f, p = radial_power_spectrum(image)
    fr, pr = radial_power_spectrum(reference)
    if f.shape != fr.shape:
        raise ValueError("the two images must have the same size")
    return (_band_mean_db(f, p, band) - _band_mean_db(f, p, LOW_BAND)) - (
        _band_mean_db(fr, pr, band) - _band_mean_db(fr, pr, LOW_BAND))


def spectrum_rows(outputs: dict[str, Sequence[torch.Tensor]], photos: Sequence[torch.Tensor]) -> list[SpectrumRow]:
    """Rows for networks' outputs (decoder label -> one output per photo, (3, H, W) 0..255)."""
    photo_decay = float(np.mean([spectral_decay(p)["decay"] for p in photos]))
    rows = []
    for label, outs in outputs.items():
        disc = [spectral_discrepancy(o, p) for o, p in zip(outs, photos)]
        rows.append(SpectrumRow(
            decoder=label, last_layer=label.split(",")[-1], images=len(disc),
            discrepancy_db=float(np.mean(disc)), discrepancy_std=float(np.std(disc)),
            decay=float(np.mean([spectral_decay(o)["decay"] for o in outs])), photo_decay=photo_decay,
        ))
    return rows


def init_spectrum_table(photo: torch.Tensor, *, decoders: Sequence[str] = LAST_LAYER_MIXES,
                        seeds: Sequence[int] = (0, 1, 2, 3)) -> list[SpectrumRow]:
    """Untrained networks (one per seed) on one photograph."""
    from models.artifacts.init import build
    from models.blocks import decoder_label, parse_decoder

    outputs = {}
    for d in decoders:
        outs = []
        for s in seeds:
            with torch.no_grad():
                outs.append(build(d, s)(photo[None])[0])
        outputs[decoder_label(parse_decoder(d))] = outs
    return spectrum_rows(outputs, [photo] * len(seeds))
