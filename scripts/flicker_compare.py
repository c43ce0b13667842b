"""Flicker of stylised video, measured for several checkpoints on one generated clip: a slow pan
across a scikit-image photo (one pixel per frame), then the camera holding still with light
sensor noise, written as H.264 by the ffmpeg imageio-ffmpeg ships. Each checkpoint stylises the
clip (models/video.py) and the script prints the flicker of input and output (models/flicker.py)
and, to show what stability costs, the style and content distance on the probe panel
(models/quality.py); it draws a stylised frame and the output's change between two still
frames for each checkpoint:

    .venv/bin/python scripts/flicker_compare.py A/last.ckpt B/last.ckpt [--labels "a,b"]
        [--out docs/images/video] [--photo coffee]

A measurement: it asserts nothing."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from models.checkpoint import load_network, read_checkpoint  # noqa: E402
from models.builtin_images import BUILTIN_PHOTOS  # noqa: E402
from models.flicker import FlickerMeter  # noqa: E402
from models.lightning_module import StyleTransferModule  # noqa: E402
from models.loss_network import build_loss_network  # noqa: E402
from models.preview import probe_batch  # noqa: E402
from models.quality import distances  # noqa: E402
from models.video import read_video, stylize_video  # noqa: E402

WIDTH, HEIGHT, FPS, PAN, STILL, NOISE = 128, 96, 12, 24, 12, 2.0  # noise: as the stability loss trains on


def make_clip(path: Path, photo: str) -> Path:
    """PAN frames panning right one pixel per frame, then STILL frames of the last crop with
    Gaussian noise of NOISE levels (seeded), at FPS."""
    import imageio_ffmpeg

    img = BUILTIN_PHOTOS[photo]()
    img = np.asarray(img.convert("RGB").resize((WIDTH * 2, round(WIDTH * 2 * img.height / img.width))), dtype=np.float32)
    top = (img.shape[0] - HEIGHT) // 2
    rng = np.random.default_rng(0)
    writer = imageio_ffmpeg.write_frames(str(path), (WIDTH, HEIGHT), fps=FPS, codec="libx264", quality=8,
                                         macro_block_size=1, ffmpeg_log_level="error")
    writer.send(None)
    for i in range(PAN + STILL):
        x = min(i, PAN - 1)
        frame = img[top:top + HEIGHT, x:x + WIDTH]
        if i >= PAN:
            frame = frame + rng.normal(0, NOISE, frame.shape)
        writer.send(np.ascontiguousarray(np.clip(np.round(frame), 0, 255).astype(np.uint8)))
    writer.close()
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", type=Path)
    ap.add_argument("--labels", help="comma-separated row labels (default: each checkpoint's stability weight)")
    ap.add_argument("--out", type=Path, default=Path("docs/images/video"), help="folder for the figure")
    ap.add_argument("--photo", default="coffee", help=f"the photo panned across: {', '.join(BUILTIN_PHOTOS)}")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    labels = args.labels.split(",") if args.labels else [None] * len(args.checkpoints)
    if len(labels) != len(args.checkpoints):
        sys.exit("--labels: one label per checkpoint")

    work = Path(tempfile.mkdtemp(prefix="flicker-"))
    clip = make_clip(work / "clip.mp4", args.photo)
    frames_in = list(read_video(clip))
    loss_net, photos = None, probe_batch()
    rows, pictures = [], []
    for ckpt, label in zip(args.checkpoints, labels, strict=True):
        info, _ = read_checkpoint(ckpt)
        if loss_net is None:
            loss_net = build_loss_network(info.config.loss_network)
        module = StyleTransferModule(info.config, style_name=info.style_name, style_png=info.style_png, loss_network=loss_net)
        module.on_fit_start()
        net, _ = load_network(ckpt)
        d = distances(loss_net, net(photos), photos, module.target_grams)
        result = stylize_video(net, clip, work / f"{len(rows)}.mp4")
        frames_out = list(read_video(result.output))
        still = FlickerMeter()  # the still part alone (the last STILL frames)
        for a, b in zip(frames_in[PAN:], frames_out[PAN:], strict=True):
            still.update(a, b)
        label = label or f"stability_weight {info.config.stability_weight:g}"
        rows.append((label, info.step, result.flicker, still.value, float(d["style_distance"].mean()),
                     float(d["content_distance"].mean())))
        k = PAN + STILL // 2
        pictures.append((label, frames_out[k], np.abs(frames_out[k].astype(np.float32) - frames_out[k - 1]).mean(axis=2)))

    print(f"clip: {WIDTH}x{HEIGHT}, {PAN} frames panning 1 px/frame then {STILL} still with noise sd {NOISE}, "
          f"{FPS} fps, H.264 (photo: {args.photo})")
    print("| network | steps | flicker, input | flicker, output | output, still part only | style distance | content distance |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, step, f, still_value, sd, cd in rows:
        print(f"| {label} | {step} | {f['input']:.2f} | {f['output']:.2f} | {still_value:.2f} | {sd:.3g} | {cd:.3g} |")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(pictures) + 1, figsize=(3.2 * (len(pictures) + 1), 5.2), squeeze=False)
    k = PAN + STILL // 2
    axes[0][0].imshow(frames_in[k])
    axes[0][0].set_title(f"input frame {k}", fontsize=9)
    axes[1][0].imshow(np.abs(frames_in[k].astype(np.float32) - frames_in[k - 1]).mean(axis=2), cmap="magma", vmin=0, vmax=20)
    axes[1][0].set_title(f"|input {k} - {k - 1}|", fontsize=9)
    for col, (label, frame, diff) in enumerate(pictures, start=1):
        axes[0][col].imshow(frame)
        axes[0][col].set_title(label, fontsize=9)
        im = axes[1][col].imshow(diff, cmap="magma", vmin=0, vmax=20)
        axes[1][col].set_title(f"|output {k} - {k - 1}|, mean {diff.mean():.2f}", fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    fig.colorbar(im, ax=axes[1].tolist(), shrink=0.8, label="8-bit levels")
    args.out.mkdir(parents=True, exist_ok=True)
    figure = args.out / "flicker.png"
    fig.savefig(figure, dpi=80)
    print(f"figure: {figure}")


if __name__ == "__main__":
    main()
