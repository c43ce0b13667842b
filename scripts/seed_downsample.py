"""The other end of the network (issue 13): does a network whose decoder has no uneven overlap
(resize-nearest) still learn periodic artifacts in training, and does the encoder's downsampling
(stride-conv, blur-stride, resize-down) or the loss network's pooling (max, avg) decide it?

Every run: the same seed (so the same shared initial weights: the downsampling kinds share
every weight), style, data order and settings; only downsample and loss_pooling differ. Each
trained network is scored on scikit-image's photographs (mean checkerboard score of its
outputs, and of the photos themselves for reference), with the probe's step-0 score beside.

    .venv/bin/python scripts/seed_downsample.py --steps 100 --size 64 --out runs/seed/downsample

Prints a JSON list of rows (and writes rows.json and outputs.png under --out).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from models.artifacts import checkerboard_score
from models.artifacts.spectra import spectral_decay
from models.checkpoint import load_network
from models.config import TrainConfig
from models.builtin_images import BUILTIN_PHOTOS
from models.images import to_tensor
from models.loss_network import build_loss_network
from models.training import train
from models.vocabulary import DOWNSAMPLE_INFO, LOSS_POOLINGS


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--probe-size", type=int, default=128)
    ap.add_argument("--decoder", default="resize-nearest")
    ap.add_argument("--style", default="ihc")
    ap.add_argument("--style-weight", type=float, default=None, help="[default: TrainConfig's]")
    ap.add_argument("--downsamples", default=",".join(DOWNSAMPLE_INFO), help="comma-separated [default: all]")
    ap.add_argument("--poolings", default=",".join(LOSS_POOLINGS), help="comma-separated [default: both]")
    ap.add_argument("--out", type=Path, default=Path("runs/seed/downsample"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    photos = [to_tensor(load().resize((args.probe_size, args.probe_size))) for load in BUILTIN_PHOTOS.values()]
    photo_scores = [checkerboard_score(p) for p in photos]
    extra = {} if args.style_weight is None else {"style_weight": args.style_weight}
    rows, firsts = [], {}
    for pooling in args.poolings.split(","):
        vgg = build_loss_network("vgg19", pooling=pooling)
        for down in args.downsamples.split(","):
            run = args.out / f"{down}-{pooling}"
            result = train(TrainConfig(size=args.size, batch=args.batch, steps=args.steps, decoder=args.decoder,
                                       downsample=down, loss_pooling=pooling, log_every=10,
                                       checkpoint_every=10 ** 6, stability_weight=0.0, **extra),  # as docs/seed.md ran it
                           out_dir=run, style=args.style, progress=False, loss_network=vgg, probe_every=10 ** 6)
            net, info = load_network(run / "last.ckpt")
            with torch.no_grad():
                outs = [net.eval()(p[None])[0].clamp(0, 255).round() for p in photos]
            scores = [checkerboard_score(o) for o in outs]
            firsts[f"{down}, {pooling} pool"] = outs[0]
            rows.append({
                "decoder": args.decoder, "downsample": down, "loss_pooling": pooling, "steps": args.steps,
                "style_weight": info.config.style_weight,
                "p2_mean": float(np.mean([s[2] for s in scores])), "p4_mean": float(np.mean([s[4] for s in scores])),
                "p2_max": float(np.max([s[2] for s in scores])), "p4_max": float(np.max([s[4] for s in scores])),
                "decay_mean": float(np.mean([spectral_decay(o)["decay"] for o in outs])),
                "probe_step0_p2": result.artifacts[0].artifact_p2, "probe_step0_p4": result.artifacts[0].artifact_p4,
                "probe_end_p2": result.artifacts[-1].artifact_p2, "probe_end_p4": result.artifacts[-1].artifact_p4,
                "final_loss": result.losses[-1].get("loss") if result.losses else None,
            })
            print(json.dumps(rows[-1]), flush=True)
    rows.append({"decoder": "(the photographs themselves)", "downsample": "-", "loss_pooling": "-", "steps": 0,
                 "p2_mean": float(np.mean([s[2] for s in photo_scores])), "p4_mean": float(np.mean([s[4] for s in photo_scores])),
                 "p2_max": float(np.max([s[2] for s in photo_scores])), "p4_max": float(np.max([s[4] for s in photo_scores])),
                 "decay_mean": float(np.mean([spectral_decay(p)["decay"] for p in photos]))})
    from models.artifacts.figures import side_by_side

    side_by_side(firsts, args.out / "outputs.png", crop=32,
                 title=f"{args.decoder} after {args.steps} steps at {args.size}px, on astronaut {args.probe_size}px")
    (args.out / "rows.json").write_text(json.dumps(rows, indent=2))
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
