"""Log-power spectra of images, and of the difference of two (A vs B), as arrays and plots
with the period-2 and period-4 frequencies marked."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.artifacts.score import PERIODS, _as_array, power_spectrum

MARK_COLOURS = {2: "#ff3b30", 4: "#ffcc00"}


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
                if (a, b) == (0, 0) or (p == 4 and a % 2 == 0 and b % 2 == 0):
                    continue
                pts.append(((a * h / p + h // 2) % h, (b * w / p + w // 2) % w))
        points[p] = pts
    return points


def plot_spectrum(spectrum: np.ndarray, path: str | Path, *, title: str = "", diverging: bool = False) -> Path:
    """Save a spectrum (from log_spectrum or difference_spectrum) as a PNG with the periodic
    frequencies ringed: red period 2, yellow period 4."""
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
