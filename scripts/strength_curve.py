"""Style strength, measured: a trained checkpoint's outputs on the probe panel (the three built-in
photos at 128 px that a job's probe measures, models/preview.py) at strengths from 1 to 0, with
the style and content distance of each (models/quality.py, against the checkpoint's own style
and loss network), for every colour mode; a plot of style distance against strength, and a
strip of one photo at five strengths:

    .venv/bin/python scripts/strength_curve.py RUN/last.ckpt --out docs/images/stylising [--steps 11]

Strength is applied as models/stylize.py does it: out = photo + s * (output - photo). Prints a
markdown table and, per colour mode, whether the style distance (distance to the style: lower
is more stylised) rises monotonically as s goes 1 -> 0 and the content distance falls. A
measurement: it asserts nothing."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from models.checkpoint import load_network, read_checkpoint  # noqa: E402
from models.builtin_images import BUILTIN_PHOTOS  # noqa: E402
from models.images import from_tensor, resize_shorter, to_tensor  # noqa: E402
from models.lightning_module import StyleTransferModule  # noqa: E402
from models.loss_network import build_loss_network  # noqa: E402
from models.preview import probe_batch  # noqa: E402
from models.quality import distances  # noqa: E402
from models.stylize import finish, select  # noqa: E402
from models.stylize_options import COLOR_MODES  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--out", type=Path, default=Path("docs/images/stylising"), help="folder for the PNGs")
    ap.add_argument("--steps", type=int, default=11, help="strengths measured, evenly from 1 to 0")
    ap.add_argument("--style", type=int, default=None, help="style index of a several-style network")
    ap.add_argument("--photo", default="chelsea", help=f"photo of the strip: {', '.join(BUILTIN_PHOTOS)}")
    args = ap.parse_args()
    torch.set_grad_enabled(False)

    info, _ = read_checkpoint(args.checkpoint)
    loss_net = build_loss_network(info.config.loss_network)
    module = StyleTransferModule(info.config, style_name=info.style_name, style_png=info.style_png, loss_network=loss_net)
    module.on_fit_start()  # the style's target Gram matrices
    net, _ = load_network(args.checkpoint)
    select(net, args.style)
    photos = probe_batch()
    raw = net(photos)
    strengths = [1 - i / (args.steps - 1) for i in range(args.steps)]
    rows: dict[str, list[tuple[float, float, float]]] = {}
    for colors in COLOR_MODES:
        for s in strengths:
            d = distances(loss_net, finish(raw, photos, strength=s, colors=colors), photos, module.target_grams)
            rows.setdefault(colors, []).append((s, float(d["style_distance"].mean()), float(d["content_distance"].mean())))

    print(f"checkpoint: {args.checkpoint} ({info.style_name}, {info.config.decoder}, step {info.step})")
    print("| strength | " + " | ".join(f"style distance ({c}) | content distance ({c})" for c in COLOR_MODES) + " |")
    print("| --- " * (1 + 2 * len(COLOR_MODES)) + "|")
    for i, s in enumerate(strengths):
        print(f"| {s:.1f} | " + " | ".join(f"{rows[c][i][1]:.4g} | {rows[c][i][2]:.4g}" for c in COLOR_MODES) + " |")
    monotone = lambda v: "yes" if all(b > a for a, b in zip(v, v[1:], strict=False)) else "NO"  # noqa: E731
    for c in COLOR_MODES:  # rows run from strength 1 down to 0
        print(f"colors={c}: as strength goes 1 -> 0, the style distance rises monotonically: "
              f"{monotone([r[1] for r in rows[c]])}; the content distance falls monotonically: "
              f"{monotone([r[2] for r in rows[c]][::-1])}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    args.out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for c in COLOR_MODES:
        ax.plot([r[0] for r in rows[c]], [r[1] for r in rows[c]], marker="o", label=f"colors={c}")
    ax.set_yscale("log")
    ax.set_xlabel("strength")
    ax.set_ylabel("style distance (panel mean, log)")
    ax.set_title(f"style distance against strength ({info.style_name}, {info.step} steps)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    plot = args.out / "strength_curve.png"
    fig.savefig(plot, dpi=90)
    print(f"plot: {plot}")

    photo = to_tensor(resize_shorter(BUILTIN_PHOTOS[args.photo](), 160))
    y = net(photo[None])[0]
    fig, axes = plt.subplots(len(COLOR_MODES), 5, figsize=(12, 2.2 * len(COLOR_MODES)), squeeze=False)
    for row, c in zip(axes, COLOR_MODES, strict=True):
        for ax, s in zip(row, (0.0, 0.25, 0.5, 0.75, 1.0), strict=True):
            ax.imshow(from_tensor(finish(y, photo, strength=s, colors=c)))
            ax.set_title(f"strength {s:g}, colors={c}", fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    strip = args.out / "strengths.png"
    fig.savefig(strip, dpi=80)
    print(f"strip: {strip}")


if __name__ == "__main__":
    main()
