"""Log-power spectra of images, and of the difference of two (A vs B), as arrays and plots
with the period-2 and period-4 frequencies marked."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.artifacts.score import PERIODS, _as_array, power_spectrum

MARK_COLOURS = {2: "#ff3b30", 4: "#ffcc00", 8: "#34c759"}


def log_spectrum(image) -> np.ndarray:
    """10 log10 of the power spectrum, DC centred (fftshift), (H, W), in dB."""
    return np.fft.fftshift(10 * np.log10(power_spectrum(image) + 1e-12))


def difference_spectrum(a, b) -> np.ndarray:
    """log_spectrum(A) - log_spectrum(B), in dB: where A has more power than B (positive)."""
    if _as_array(a).shape[1:] != _as_array(b).shape[1:]:
        raise ValueError("the two images must have the same size")
    return log_spectrum(a) - log_spectrum(b)


def periodic_points(h: int, w: int) -> dict[int, list[tuple[float, float]]]:
    """For each period, the (row, col) positions of its frequencies in a centred spectrum."""
    points: dict[int, list[tuple[float, float]]] = {}
    for p in PERIODS:
        pts = []
        for a in range(p):
            for b in range(p):
                if (a, b) == (0, 0) or (p > 2 and a % 2 == 0 and b % 2 == 0):
                    continue
                pts.append(((a * h / p + h // 2) % h, (b * w / p + w // 2) % w))
        points[p] = pts
    return points


def plot_spectrum(spectrum: np.ndarray, path: str | Path, *, title: str = "", diverging: bool = False) -> Path:
    """Save a spectrum (from log_spectrum or difference_spectrum) as a PNG with the periodic
    frequencies ringed: red period 2, yellow period 4, green period 8."""
    from models.artifacts.figures import plt, save_figure

    h, w = spectrum.shape
    fig, ax = plt.subplots(figsize=(5, 5 * h / w + 0.4))
    if diverging:
        lim = float(np.percentile(np.abs(spectrum), 99.5)) or 1.0
        im = ax.imshow(spectrum, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    else:
        im = ax.imshow(spectrum, cmap="magma", interpolation="nearest",
                       vmin=float(np.percentile(spectrum, 1)), vmax=float(spectrum.max()))
    for p, pts in periodic_points(h, w).items():
        ys, xs = zip(*pts)
        ax.scatter(xs, ys, s=140, facecolors="none", edgecolors=MARK_COLOURS[p], linewidths=1.2,
                   label=f"period {p}")
    ax.legend(loc="upper right", fontsize=7, framealpha=0.7)
    ax.set_xticks([0, w // 2, w - 1], ["-1/2", "0", "+1/2"])
    ax.set_yticks([0, h // 2, h - 1], ["-1/2", "0", "+1/2"])
    ax.set_xlabel("cycles / pixel")
    fig.colorbar(im, ax=ax, fraction=0.046, label="dB")
    if title:
        ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


# --- the literature's 1-D measures ------------------------------------------------------------
#
# Durall, Keuper & Keuper, "Watch your Up-Convolution" (CVPR 2020): the 2-D power spectrum
# integrated over azimuth, so each frequency radius gets one number; up-convolutions show
# there as a tail that does not fall (or rises) towards the highest frequencies.
# Dzanic, Shah & Witherden, "Fourier spectrum discrepancies in deep network generated images"
# (NeurIPS 2020): a power law fitted to the high-frequency part of that 1-D spectrum; generated
# images decay differently from photographs there.

from functools import lru_cache  # noqa: E402

# The high-frequency band the decay is fitted over, in cycles per pixel (radius): the upper
# half of the band up to the axis Nyquist frequency 1/2.
DECAY_BAND = (0.25, 0.5)


@lru_cache(maxsize=32)
def _rings(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ring index of every bin of an (h, w) unshifted spectrum, the ring radii (cycles per
    pixel) and the bins per ring. Rings are 1/min(h, w) wide (one bin along the shorter
    axis) and reach the corner (radius √2/2), where a pixel checkerboard puts its power."""
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
    radius = np.sqrt(fy ** 2 + fx ** 2)
    step = 1.0 / min(h, w)
    index = np.rint(radius / step).astype(np.int64).ravel()
    counts = np.bincount(index)
    freqs = np.arange(len(counts)) * step
    return index, freqs, counts


def radial_power_spectrum(image) -> tuple[np.ndarray, np.ndarray]:
    """The azimuthally integrated power spectrum (Durall et al. 2020) of one image:
    (freqs, power), freqs in cycles per pixel from 0 to √2/2 (the corner of the spectrum),
    power the mean |FFT|² per ring of the same Hann-windowed, mean-removed, channel-averaged
    spectrum the checkerboard score uses (so the DC ring is ~0). Linear units; take
    10 log10 for dB. Image as for `checkerboard_score`: (C, H, W) tensor/array or (H, W, C)."""
    p = power_spectrum(image)
    index, freqs, counts = _rings(*p.shape)
    power = np.bincount(index, weights=p.ravel(), minlength=len(counts)) / counts
    return freqs.copy(), power


def spectral_decay(image, *, band: tuple[float, float] = DECAY_BAND) -> dict[str, float]:
    """The fitted decay of the high-frequency tail (Dzanic et al. 2020): a power law
    P(f) = A · f^(-decay) fitted by least squares to log P against log f over the rings
    with band[0] <= f <= band[1] (cycles per pixel). White noise decays by ~0, photographs by
    about 2 to 4 (natural images' 1/f² amplitude law and steeper), an image whose tail is
    lifted by a periodic pattern by less, or it rises (negative decay).

    Returns decay (the exponent), log10_amplitude (log10 A), residual_db (RMS of the fit's
    residual in dB: large when the tail is not a power law, e.g. a spike) and band."""
    lo, hi = band
    if not 0 < lo < hi:
        raise ValueError(f"the decay band must satisfy 0 < low < high, got {band}")
    freqs, power = radial_power_spectrum(image)
    keep = (freqs >= lo) & (freqs <= hi) & (power > 0)
    if keep.sum() < 3:
        raise ValueError(f"the image is too small to fit a decay over {lo}..{hi} cycles/pixel")
    x, y = np.log10(freqs[keep]), np.log10(power[keep])
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    return {"decay": float(-slope), "log10_amplitude": float(intercept),
            "residual_db": float(10 * np.sqrt(np.mean(residual ** 2))), "band": [float(lo), float(hi)]}


def plot_radial_spectra(spectra: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path, *,
                        title: str = "") -> Path:
    """1-D spectra (name -> (freqs, power)) on one log-log plot, the decay band shaded."""
    from models.artifacts.figures import plt, save_figure

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (f, p) in spectra.items():
        ok = (f > 0) & (p > 0)
        ax.loglog(f[ok], p[ok], label=name, lw=1.2)
    ax.axvspan(*DECAY_BAND, color="grey", alpha=0.12, label="decay fit band")
    ax.axvline(0.5, color="#ff3b30", lw=0.8, ls="--")
    ax.set_xlabel("radius (cycles / pixel); dashed: 1/2")
    ax.set_ylabel("mean power per ring")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return save_figure(fig, path)
