"""Pictures of artifacts (matplotlib, no display needed): side by side, at pixel zoom."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: workers and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from models.artifacts.score import checkerboard_map, checkerboard_score  # noqa: E402


def save_figure(fig, path: str | Path, *, dpi: int = 100) -> Path:
    """Lay out, write (creating the folder) and close a figure."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def to_uint8(image) -> np.ndarray:
    """(3, H, W) float 0..255 tensor or (H, W, 3) uint8 array -> (H, W, 3) uint8."""
    a = np.asarray(image.detach().cpu().numpy() if hasattr(image, "detach") else image)
    if a.ndim == 3 and a.shape[0] == 3:
        a = a.transpose(1, 2, 0)
    return np.clip(np.round(a), 0, 255).astype(np.uint8)


def worst_block(image, *, crop: int = 32) -> tuple[int, int]:
    """(top, left) of the crop x crop window whose period-2 pattern is strongest."""
    m = checkerboard_map(image, block=crop // 2)
    i, j = np.unravel_index(np.argmax(m), m.shape)
    h, w = to_uint8(image).shape[:2]
    return min(i * crop // 2, h - crop), min(j * crop // 2, w - crop)


def gradient_image(g) -> np.ndarray:
    """|gradient| (3, H, W), scaled so its 99.5th percentile is white: for looking, not scoring."""
    a = np.abs(g.detach().cpu().numpy() if hasattr(g, "detach") else np.asarray(g))
    top = float(np.percentile(a, 99.5)) or 1.0
    return np.clip(a / top * 255, 0, 255).transpose(1, 2, 0).astype(np.uint8)


def stretched(image) -> np.ndarray:
    """(3, H, W) float -> (H, W, 3) uint8 spanning 0..255: an untrained network's output
    varies by a few levels only; stretched, its pattern can be seen. For looking, not scoring."""
    a = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image, dtype=float)
    a = a - a.mean(axis=(1, 2), keepdims=True)  # per channel: the colour cast is not the pattern
    lo, hi = np.percentile(a, 0.5), np.percentile(a, 99.5)
    return np.clip((a - lo) / max(hi - lo, 1e-9) * 255, 0, 255).transpose(1, 2, 0).astype(np.uint8)


def side_by_side(images: dict[str, object], path: str | Path, *, crop: int = 32,
                 at: tuple[int, int] | None = None, title: str = "",
                 scores: dict[str, dict[int, float]] | None = None) -> Path:
    """One column per image: the whole image with the crop marked, then the crop at pixel
    zoom (nearest: every output pixel a square, no smoothing), titled with its scores.
    The crop is where the first image's checkerboard is strongest, unless `at` says; scores
    are the images' own unless given (a picture of a gradient is not the gradient)."""
    names = list(images)
    arrays = {n: to_uint8(images[n]) for n in names}
    top, left = at if at is not None else worst_block(images[names[0]], crop=crop)
    fig, axes = plt.subplots(2, len(names), figsize=(4.2 * len(names), 8.4), squeeze=False)
    for col, name in enumerate(names):
        a = arrays[name]
        s = scores[name] if scores and name in scores else checkerboard_score(a)
        axes[0, col].imshow(a, interpolation="nearest")
        axes[0, col].add_patch(Rectangle((left - 0.5, top - 0.5), crop, crop, fill=False, ec="#00e5ff", lw=1.5))
        axes[0, col].set_title(f"{name}\nperiod 2: {s[2]:+.1f} dB   period 4: {s[4]:+.1f} dB", fontsize=10)
        axes[1, col].imshow(a[top:top + crop, left:left + crop], interpolation="nearest")
        axes[1, col].set_title(f"pixels {left}..{left + crop - 1} x {top}..{top + crop - 1}, unsmoothed", fontsize=9)
        for ax in axes[:, col]:
            ax.set_xticks([])
            ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=11)
    return save_figure(fig, path, dpi=110)


def artifact_curves(curves: dict[str, list[dict[str, float]]], path: str | Path, *, title: str = "") -> Path:
    """Probe scores (rows of step, artifact_p2, artifact_p4) over training, one line per run."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharex=True)
    for name, rows in curves.items():
        steps = [r["step"] for r in rows]
        for ax, key in zip(axes, ("artifact_p2", "artifact_p4")):
            ax.plot(steps, [r[key] for r in rows], marker="o", ms=3, label=name)
    for ax, p in zip(axes, (2, 4)):
        ax.set_title(f"period {p} score of the probe image", fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("dB")
        ax.axhline(0, color="grey", lw=0.6)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
