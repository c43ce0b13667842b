"""Trained checkpoints side by side, as docs/training.md shows them: for each, the style and
content distance on the probe panel (models/quality.py, the numbers a job's probe records) and
the period-2/4 checkerboard scores, before training (the same seed's initial network) and after,
and one figure (photo, style, untrained, trained):

    .venv/bin/python scripts/score_runs.py RUN/last.ckpt [RUN2/last.ckpt ...] [--figure out.png]
        [--labels "a,b"] [--photo chelsea]

A measurement: it prints a table and asserts nothing."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from models.artifacts import checkerboard_score  # noqa: E402
from models.checkpoint import load_network, read_checkpoint  # noqa: E402
from models.builtin_images import BUILTIN_PHOTOS  # noqa: E402
from models.images import from_tensor, resize_shorter, to_tensor  # noqa: E402
from models.lightning_module import StyleTransferModule  # noqa: E402
from models.loss_network import build_loss_network  # noqa: E402
from models.preview import PANEL, PROBE_SCORED, probe_batch  # noqa: E402
from models.quality import distances  # noqa: E402


@torch.no_grad()
def measure(net, module: StyleTransferModule, photos: torch.Tensor) -> dict[str, float]:
    out = net(photos)
    d = distances(module.loss_net, out, photos, module.target_grams)
    s = checkerboard_score(np.asarray(from_tensor(out[PANEL.index(PROBE_SCORED)])))
    return {"style_distance": float(d["style_distance"].mean()),
            "content_distance": float(d["content_distance"].mean()), "p2_db": s[2], "p4_db": s[4]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", type=Path)
    ap.add_argument("--labels", help="comma-separated row labels (default: each checkpoint's settings)")
    ap.add_argument("--figure", type=Path, help="write the figure here (PNG)")
    ap.add_argument("--photo", default="chelsea", help=f"the photo in the figure: {', '.join(BUILTIN_PHOTOS)}")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    loss_net = build_loss_network("vgg19")
    photos = probe_batch()
    labels = args.labels.split(",") if args.labels else [None] * len(args.checkpoints)
    if len(labels) != len(args.checkpoints):
        sys.exit("--labels: one label per checkpoint")
    photo = to_tensor(resize_shorter(BUILTIN_PHOTOS[args.photo](), 256))
    rows, pictures = [], []
    for ckpt, label in zip(args.checkpoints, labels, strict=True):
        info, _ = read_checkpoint(ckpt)
        cfg = info.config
        # The module seeds its network from the config: the run's own initial weights.
        module = StyleTransferModule(cfg, style_name=info.style_name, style_png=info.style_png, loss_network=loss_net)
        module.on_fit_start()
        trained, _ = load_network(ckpt)
        init, after = measure(module.net.eval(), module, photos), measure(trained.eval(), module, photos)
        label = label or f"{info.style_name} {cfg.decoder} sw={cfg.style_weight:g} {cfg.size}px x{cfg.batch}"
        rows.append((label, info.step, init, after))
        style = Image.open(io.BytesIO(info.style_png)).convert("RGB")
        pictures.append((label, info.step, style, from_tensor(module.net(photo[None])[0]), from_tensor(trained(photo[None])[0])))

    print("| run | steps | style distance: init -> trained | content distance: init -> trained | period 2 dB: init -> trained | period 4 dB: init -> trained |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, step, a, b in rows:
        print(f"| {label} | {step} | {a['style_distance']:.3g} -> {b['style_distance']:.3g} | "
              f"{a['content_distance']:.3g} -> {b['content_distance']:.3g} | {a['p2_db']:+.1f} -> {b['p2_db']:+.1f} | "
              f"{a['p4_db']:+.1f} -> {b['p4_db']:+.1f} |")
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(len(pictures), 4, figsize=(12, 2.9 * len(pictures)), squeeze=False)
        original = from_tensor(photo)
        for row, (label, step, style, before, after) in zip(axes, pictures, strict=True):
            for ax, img, title in zip(row, (original, style, before, after),
                                      ("photo", "style", "untrained (step 0)", f"trained ({step} steps)"), strict=True):
                ax.imshow(img)
                ax.set_title(title, fontsize=9)
                ax.axis("off")
            row[0].text(-0.05, 0.5, label, transform=row[0].transAxes, rotation=90, va="center", ha="right", fontsize=8)
        fig.tight_layout()
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.figure, dpi=80)
        print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()
