"""Quality beside the artifacts, measured: a short real run per decoder (same seed, so the same
shared initial weights and data order; the real vgg19 loss network), then a table of the
probe at init and at the end (period-2/4 checkerboard scores of astronaut's output; style and
content distance on the panel, models/quality.py) and what the probe costs:

    .venv/bin/python scripts/quality_curve.py [--decoders "deconv resize-nearest"] [--steps 100]
        [--size 128] [--batch 4] [--probe-every 25] [--style ihc] [--seed 0] [--out runs/quality] [--json]

"probe s" is the median of 3 timed calls of the probe itself (ArtifactProbe.measure on the
trained network: one forward of the panel at 128 px, the loss network over the outputs, the
score); "share of run" is that times the run's probes over the run's training time. A
measurement, not a test: it prints a table and asserts nothing."""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.callbacks import ArtifactProbe  # noqa: E402
from models.checkpoint import load_network  # noqa: E402
from models.config import TrainConfig  # noqa: E402
from models.lightning_module import StyleTransferModule  # noqa: E402
from models.loss_network import build_loss_network  # noqa: E402
from models.preview import PANEL, PROBE_SCORED, probe_batch  # noqa: E402
from models.training import train  # noqa: E402


def probe_seconds(checkpoint: Path, loss_net, repeats: int = 3) -> float:
    """The probe's own time on the trained network, as training calls it (no trainer needed
    beyond the step, the rank and a logger)."""
    net, info = load_network(checkpoint)
    module = StyleTransferModule(info.config, style_name=info.style_name, style_png=info.style_png, loss_network=loss_net)
    module.net = net
    module.on_fit_start()  # the style's Gram targets
    probe = ArtifactProbe(probe_batch(), every=1, scored=PANEL.index(PROBE_SCORED))
    times = []
    for step in range(repeats):
        started = time.perf_counter()
        probe.measure(SimpleNamespace(global_step=step, is_global_zero=True, logger=None), module)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--decoders", default="deconv resize-nearest")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--probe-every", type=int, default=25)
    ap.add_argument("--style", default="ihc")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/quality"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")

    loss_net = build_loss_network("vgg19")
    rows = []
    for decoder in args.decoders.split():
        # The encoder and objective of the runs docs/training.md records (before the December 2026 defaults).
        cfg = TrainConfig(decoder=decoder, steps=args.steps, size=args.size, batch=args.batch, seed=args.seed,
                          downsample="stride-conv", stability_weight=0.0)
        result = train(cfg, out_dir=args.out / decoder.replace(",", "+"), style=args.style, progress=False,
                       device="cpu", compile="off", loss_network=loss_net, probe_every=args.probe_every)
        t_probe = probe_seconds(result.checkpoint, loss_net)
        rows.append({"decoder": cfg.decoder, "init": result.artifacts[0].to_dict(), "end": result.artifacts[-1].to_dict(),
                     "seconds_per_step": result.seconds / result.steps, "probe_seconds": t_probe,
                     "probes": len(result.artifacts), "run_seconds": result.seconds,
                     "probe_share": len(result.artifacts) * t_probe / result.seconds})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{args.steps} steps at {args.size} px, batch {args.batch}, seed {args.seed}, style {args.style}, vgg19; "
          f"probe every {args.probe_every} steps\n")
    print("| decoder | step | period 2 (dB) | period 4 (dB) | style distance | content distance |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        for when in ("init", "end"):
            p = r[when]
            print(f"| {r['decoder']} | {p['step']} | {p['artifact_p2']:+.1f} | {p['artifact_p4']:+.1f} | "
                  f"{p['style_distance']:.3g} | {p['content_distance']:.3g} |")
    print("\n| decoder | s/step | probe s | probes | share of run |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['decoder']} | {r['seconds_per_step']:.2f} | {r['probe_seconds']:.2f} | {r['probes']} | "
              f"{100 * r['probe_share']:.1f}% |")


if __name__ == "__main__":
    main()
