"""Chandrasegaran et al. (CVPR 2021) on our networks, after a short training: the article's
per-stage mixes trained alike (same seed, style, data order), then each network's outputs on
scikit-image's photographs compared with the photographs' spectra (models/artifacts/lastlayer.py).

    .venv/bin/python scripts/seed_lastlayer.py --steps 60 --size 64 --out runs/seed/lastlayer

Prints a JSON list of rows (and writes rows.json and radial-spectra.png under --out).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from models.artifacts.lastlayer import LAST_LAYER_MIXES, spectrum_rows
from models.artifacts.spectra import plot_radial_spectra, radial_power_spectrum
from models.checkpoint import load_network
from models.config import TrainConfig
from models.builtin_images import BUILTIN_PHOTOS
from models.images import to_tensor
from models.loss_network import build_loss_network
from models.training import train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--probe-size", type=int, default=128)
    ap.add_argument("--style", default="ihc")
    ap.add_argument("--out", type=Path, default=Path("runs/seed/lastlayer"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    vgg = build_loss_network("vgg19")
    photos = [to_tensor(load().resize((args.probe_size, args.probe_size))) for load in BUILTIN_PHOTOS.values()]
    outputs = {}
    for mix in LAST_LAYER_MIXES:
        run = args.out / mix.replace(",", "+")
        if not (run / "last.ckpt").is_file():
            # The encoder and objective of the runs docs/seed.md records (before the December 2026 defaults).
            train(TrainConfig(size=args.size, batch=2, steps=args.steps, decoder=mix, log_every=10,
                              checkpoint_every=10 ** 6, downsample="stride-conv", stability_weight=0.0), out_dir=run, style=args.style, progress=False,
                  loss_network=vgg, probe_every=10 ** 6)
        net, _ = load_network(run / "last.ckpt")
        with torch.no_grad():
            outputs[net.decoder_label] = [net.eval()(p[None])[0] for p in photos]
    rows = [r.as_dict() for r in spectrum_rows(outputs, photos)]
    spectra = {"photo (astronaut)": radial_power_spectrum(photos[0])}
    spectra.update({k: radial_power_spectrum(v[0]) for k, v in outputs.items()})
    plot_radial_spectra(spectra, args.out / "radial-spectra.png",
                        title=f"after {args.steps} steps at {args.size} px: outputs on astronaut {args.probe_size} px")
    (args.out / "rows.json").write_text(json.dumps(rows, indent=2))
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
