"""The sweep that chose the training defaults (docs/training.md, "How the defaults were chosen").

Trains every named configuration on every built-in style with each seed (128 px, batch 4,
the default steps unless --steps), then measures each trained network with models/measures.py:
style taken by the fixed yardstick, content distance, the checkerboard score at periods 2, 4
and 8 above the panel photos' own, and shift equivariance. Each run's row is written to
OUT/rows/<config>-<style>-s<seed>.json as soon as it is measured, so the sweep can be
stopped and started again (finished runs are skipped), and the astronaut output at 256 px to
OUT/images/. --report prints the table: per configuration and style, the mean and 95%
interval over seeds.

    .venv/bin/python scripts/sweep_defaults.py --configs old,lowpass --seeds 0,1,2 --out runs/sweep
    .venv/bin/python scripts/sweep_defaults.py --out runs/sweep --report [--json]
    .venv/bin/python scripts/sweep_defaults.py --out runs/sweep --remeasure   # a measure added since, on kept checkpoints
    .venv/bin/python scripts/sweep_defaults.py --style-levels   # the styles' own scores above the photos
    .venv/bin/python scripts/sweep_defaults.py --out runs/sweep --tradeoff tradeoff.png --configs old,lowpass-blur-stab1000
    .venv/bin/python scripts/sweep_defaults.py --step-time --configs old,lowpass-blur-stab1000 --threads 2
    .venv/bin/python scripts/sweep_defaults.py --out runs/sweep --figure sweep.png --configs old,lowpass-blur-stab1000

The configurations are CONFIGS below: each is the old defaults with a few settings changed.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import time
from pathlib import Path

import torch
from PIL import Image

from models.checkpoint import load_network
from models.config import TrainConfig
from models.hardware import CPU_BF16_FLAGS, cpu_flags, cpu_model
from models.images import resize_shorter, save_png, to_tensor
from models.artifacts.score import PERIODS
from models.measures import MEASURE_SIZE, measure_network, panel
from models.training import train
from models.vocabulary import BUILTIN_STYLE_INFO
from service.core.seeds import interval as seeds_interval

# The defaults before this sweep: resize-nearest, stride-conv, max pooling, lr 5e-3, style 5e-2.
# Every setting the defaults have changed is pinned here: a configuration that leaves one out
# would train with today's default of it (the stability weight left out made "old" runs train
# with the term on, once it became a default).
OLD = {"decoder": "resize-nearest", "downsample": "stride-conv", "loss_pooling": "max", "lr": 5e-3,
       "style_weight": 5e-2, "stability_weight": 0.0, "stability_shift": "one", "filtered_relu": False,
       "lowpass_cutoff": 1.0}
CONFIGS: dict[str, dict] = {
    "old": OLD,
    "lowpass": {**OLD, "decoder": "resize-lowpass"},
    "lowpass-blur": {**OLD, "decoder": "resize-lowpass", "downsample": "blur-stride"},
    "zoh": {**OLD, "decoder": "deconv-zoh"},
    "bilinear": {**OLD, "decoder": "resize-bilinear"},
    "nearest-blur": {**OLD, "downsample": "blur-stride"},
    "avg-pool": {**OLD, "loss_pooling": "avg", "style_weight": 1.0},
    "lowpass-blur-lr2": {**OLD, "decoder": "resize-lowpass", "downsample": "blur-stride", "lr": 2e-3},
    # The stability loss's shift term (models/losses.py) asks f(shift(x)) = shift(f(x)) for a
    # one-pixel shift: against a texture stuck to the residual blocks' grid.
    "old-stab300": {**OLD, "stability_weight": 300.0},
    "old-stab1000": {**OLD, "stability_weight": 1000.0},
    "lowpass-blur-stab300": {**OLD, "decoder": "resize-lowpass", "downsample": "blur-stride", "stability_weight": 300.0},
    "lowpass-blur-stab1000": {**OLD, "decoder": "resize-lowpass", "downsample": "blur-stride", "stability_weight": 1000.0},
    "lowpass-blur-stab1000-subgrid": {**OLD, "decoder": "resize-lowpass", "downsample": "blur-stride",
                                      "stability_weight": 1000.0, "stability_shift": "subgrid"},
    # A residual block at full resolution after the decoder, where points need not sit on the
    # coarse grid (the stars of hubble stayed on it whatever the shifts asked).
    "lowpass-blur-stab1000-fullres": {**OLD, "decoder": "resize-lowpass", "downsample": "blur-stride",
                                      "stability_weight": 1000.0, "full_res_blocks": 1},
    # The same asked to take more style (the subgrid shifts cost some: equal style taken is the
    # comparison the defaults need).
    "lowpass-blur-stab1000-subgrid-sw2": {**OLD, "decoder": "resize-lowpass", "downsample": "blur-stride",
                                          "stability_weight": 1000.0, "stability_shift": "subgrid",
                                          "style_weight": 0.1},
    # The two remedies together (subgrid shifts asked for, a full-resolution stage to answer
    # them with), and the shifts asked for harder.
    "lowpass-blur-stab1000-subgrid-fullres": {**OLD, "decoder": "resize-lowpass", "downsample": "blur-stride",
                                              "stability_weight": 1000.0, "stability_shift": "subgrid",
                                              "full_res_blocks": 1},
    "lowpass-blur-stab3000-subgrid": {**OLD, "decoder": "resize-lowpass", "downsample": "blur-stride",
                                      "stability_weight": 3000.0, "stability_shift": "subgrid"},
    # Filtered nonlinearities (models/blocks.py FilteredReLU): no ReLU below full resolution
    # folds its harmonics back onto the coarse grid. Alone, and with today's defaults.
    "lowpass-blur-filtered": {**OLD, "decoder": "resize-lowpass", "downsample": "blur-stride", "filtered_relu": True},
    "lowpass-blur-stab1000-filtered": {**OLD, "decoder": "resize-lowpass", "downsample": "blur-stride",
                                       "stability_weight": 1000.0, "filtered_relu": True},
    # The same asked for twice the style: does it take the old defaults' style back, and keep
    # the lattice away?
    "lowpass-blur-stab1000-filtered-sw2": {**OLD, "decoder": "resize-lowpass", "downsample": "blur-stride",
                                           "stability_weight": 1000.0, "filtered_relu": True, "style_weight": 0.1},
    # Today's defaults with the encoder's [1,2,1] blur replaced by the Kaiser low-pass of the
    # filtered ReLUs (lowpass-stride): does the drop of EQ-T at 1 and 2 pixels come from it?
    "lowpass-lpstride-stab1000-filtered-sw2": {**OLD, "decoder": "resize-lowpass", "downsample": "lowpass-stride",
                                               "stability_weight": 1000.0, "filtered_relu": True,
                                               "style_weight": 0.1},
    # Today's defaults with every low-pass filter cut off at 0.7 of its Nyquist frequency
    # (TrainConfig.lowpass_cutoff; StyleGAN3's margin for the window's transition band).
    "lowpass-blur-stab1000-filtered-sw2-fc07": {**OLD, "decoder": "resize-lowpass", "downsample": "blur-stride",
                                                "stability_weight": 1000.0, "filtered_relu": True,
                                                "style_weight": 0.1, "lowpass_cutoff": 0.7},
    "lowpass-blur-stab1000-filtered-sw2-fc085": {**OLD, "decoder": "resize-lowpass", "downsample": "blur-stride",
                                                 "stability_weight": 1000.0, "filtered_relu": True,
                                                 "style_weight": 0.1, "lowpass_cutoff": 0.85},
}
# The 0.85 cutoff asked for 1.5 and 3 times its style: ihc took less style at 0.85 than the old
# defaults did. Does a higher weight take it back without the lattice?
for _name, _weight in (("sw3", 0.15), ("sw6", 0.3)):
    CONFIGS[f"lowpass-blur-stab1000-filtered-{_name}-fc085"] = {**CONFIGS["lowpass-blur-stab1000-filtered-sw2-fc085"],
                                                               "style_weight": _weight}
KEYS = ("style_taken", "content_distance", "excess_p2", "excess_p4", "excess_p8", "locked_p2", "locked_p4", "locked_p8",
        "eq_t1", "eq_t2", "eq_t3", "eq_t4")


def style_tensors(info) -> list[torch.Tensor]:
    side = info.config.style_size or info.config.size
    return [to_tensor(resize_shorter(Image.open(io.BytesIO(png)), side))[None] for png in info.style_pngs]


def run_one(name: str, style: str, seed: int, *, steps: int | None, out: Path) -> dict:
    settings = {k: v for k, v in CONFIGS[name].items()}
    config = TrainConfig(seed=seed, checkpoint_every=10**6, **settings, **({"steps": steps} if steps else {}))
    run_dir = out / "runs" / f"{name}-{style}-s{seed}"
    started = time.perf_counter()
    result = train(config, out_dir=run_dir, style=style, progress=False, probe_every=10**6)
    seconds = time.perf_counter() - started
    net, info = load_network(result.checkpoint)
    row = {"config": name, "style": style, "seed": seed, "steps": config.steps, "seconds": round(seconds, 1),
           "cpu": cpu_model(), "bf16_units": sorted(set(cpu_flags()) & set(CPU_BF16_FLAGS)), "settings": settings,
           "train_config": dataclasses.asdict(config), **measure_network(net, style_tensors(info), train_size=config.size)}
    with torch.no_grad():
        image = net(panel(MEASURE_SIZE)[1:2])[0]  # astronaut
    save_png(image, out / "images" / f"{name}-{style}-s{seed}.png")
    return row


STYLE_ORDER = ["ihc", "hubble", "colorwheel", "gravel", "brick"]


def remeasure(out: Path) -> None:
    """Measure again every run whose row lacks a measure added since and whose checkpoint is
    still in OUT/runs (rows from runs whose checkpoints are gone keep what they had)."""
    for path in sorted((out / "rows").glob("*.json")):
        row = json.loads(path.read_text())
        ckpt = out / "runs" / path.stem / "last.ckpt"
        if all(k in row for k in KEYS) or not ckpt.exists():
            continue
        net, info = load_network(ckpt)
        row.update(measure_network(net, style_tensors(info), train_size=info.config.size))
        path.write_text(json.dumps(row, indent=1))
        print(path.stem, {k: round(row[k], 2) for k in KEYS}, flush=True)


def interval(values: list[float]) -> tuple[float, float] | None:
    """Mean and the half-width of its 95% interval over seeds (0 for one seed): the experiments'
    own definition (service/core/seeds.py), so the sweep and the A/B page read alike. None
    where no run has the measure (rows measured before it existed)."""
    if not values:
        return None
    i = seeds_interval(values)
    return i["mean"], (0.0 if i["low"] is None else i["high"] - i["mean"])


def cpu_label(row: dict) -> str:
    """The row's CPU and what `auto` trained in there: bf16 on its AMX or AVX512_BF16 units, fp32
    on a CPU with neither (the kernels, and tiny runs' outcomes, differ between them)."""
    cpu = row.get("cpu", "unrecorded")
    cpu = "Intel Xeon" if cpu.startswith("Intel") else cpu
    units = row.get("bf16_units")
    if units is None:
        return cpu
    return f"{cpu} ({'AMX' if 'amx_bf16' in units else 'AVX512_BF16' if units else 'fp32'})"


def report(out: Path, *, as_json: bool, markdown: bool = False) -> None:
    rows = [json.loads(p.read_text()) for p in sorted((out / "rows").glob("*.json"))]
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["config"], r["style"]), []).append(r)
    table = []
    for (config, style), rs in sorted(groups.items()):
        entry = {"config": config, "style": style, "seeds": len(rs), "cpus": sorted({cpu_label(r) for r in rs})}
        for k in KEYS:
            entry[k] = interval([r[k] for r in rs if k in r])
            entry[f"{k}_runs"] = sum(k in r for r in rs)
        table.append(entry)
    if as_json:
        print(json.dumps(table, indent=1))
        return
    if markdown:  # docs/training.md's table
        cols = ["style taken", "content distance", "excess p2", "p4", "p8", "locked p2", "p4", "p8",
                "EQ-T 1 px", "2 px", "3 px", "4 px"]
        print("| style | configuration | seeds | " + " | ".join(cols) + " | CPUs |")
        print("| --- | --- | ---: | " + " | ".join("---:" for _ in cols) + " | --- |")
        for e in sorted(table, key=lambda e: (STYLE_ORDER.index(e["style"]) if e["style"] in STYLE_ORDER else 99,
                                               e["config"])):
            cells = []
            for k in KEYS:
                if e[k] is None:
                    cells.append("–")
                    continue
                m, h = e[k]
                pm = e[f"{k}_runs"] > 1
                cells.append(f"{m:.2f}" + (f" ± {h:.2f}" if pm else "") if k == "style_taken"
                             else f"{m:.3g}" if k == "content_distance"
                             else f"{m:+.1f}" + (f" ± {h:.1f}" if pm else "") if k.startswith(("excess", "locked"))
                             else f"{m:.1f}" + (f" ± {h:.1f}" if pm else ""))
            print(f"| {e['style']} | {e['config']} | {e['seeds']} | " + " | ".join(cells) + f" | {', '.join(e['cpus'])} |")
        return
    print(f"{len(rows)} runs; mean ± 95% interval over seeds; each row names the CPUs its runs were on "
          "(bf16 kernels differ between them)")
    head = ["config", "style", "n", *KEYS, "cpus"]
    print(" | ".join(head))
    for e in table:
        cells = [e["config"], e["style"], str(e["seeds"])]
        for k in KEYS:
            if e[k] is None:
                cells.append("-")
                continue
            m, h = e[k]
            cells.append(f"{m:.2f}±{h:.2f}" if k == "style_taken" else f"{m:.3g}±{h:.2g}" if k == "content_distance"
                         else f"{m:.1f}±{h:.1f}")
        print(" | ".join([*cells, ", ".join(e["cpus"])]))


def style_levels() -> None:
    """Each built-in style's own checkerboard score at the size it is trained at (the default
    crop size), minus the panel photos' mean: how much a network that takes the style fully
    adds to excess_p* by the style's texture alone (markdown)."""
    import numpy as np

    from models.artifacts.score import checkerboard_score
    from models.builtin_images import load_style
    from models.measures import photo_scores

    photos = photo_scores()
    level = {p: float(np.mean([s[p] for s in photos])) for p in PERIODS}
    side = TrainConfig().size
    print("| style | p2 | p4 | p8 |")
    print("| --- | ---: | ---: | ---: |")
    for name in STYLE_ORDER:
        own = checkerboard_score(np.asarray(resize_shorter(load_style(name)[1].convert("RGB"), side)))
        print(f"| {name} | " + " | ".join(f"{own[p] - level[p]:+.1f}" for p in PERIODS) + " |")


def step_times(configs: list[str], *, repeats: int = 5) -> None:
    """The training step of each configuration (the transfer network, the loss network, the
    stability term's extra passes; 128 px, batch 4, in the precision `auto` picks here), timed
    in this one process with the configurations alternated repetition by repetition so that
    a busy machine slows them alike; the median, and its ratio to the first configuration."""
    import statistics

    from models.builtin_images import load_style
    from models.hardware import autocast, resolve_precision
    from models.lightning_module import StyleTransferModule, style_png_from_image
    from models.loss_network import build_loss_network

    precision = resolve_precision("auto", "cpu")
    png = style_png_from_image(load_style("gravel")[1])
    batch = panel(TrainConfig().size)[:1].repeat(TrainConfig().batch, 1, 1, 1)
    steps = {}
    for name in configs:
        config = TrainConfig(**CONFIGS[name])
        module = StyleTransferModule(config, style_name="gravel", style_png=png,
                                     loss_network=build_loss_network("vgg19", pooling=config.loss_pooling))
        module.compute_style_grams()
        opt = torch.optim.Adam(module.net.parameters(), lr=config.lr)
        noise = torch.randn_like(batch) * 2.0 if config.stability_weight > 0 else None

        def step(module=module, opt=opt, noise=noise) -> None:
            with autocast(precision, "cpu"):
                loss = module.losses(batch, None, noise, torch.tensor(module.stability_shift(0)))["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        step()  # warm-up
        steps[name] = step
    times: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(repeats):
        for name, step in steps.items():
            started = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - started)
    base = statistics.median(times[configs[0]])
    print(f"training step, 128 px x4, {precision}, {torch.get_num_threads()} thread(s), {cpu_model()}; "
          f"median of {repeats}, configurations alternated")
    print("| configuration | step (ms) | ratio |")
    print("| --- | ---: | ---: |")
    for name in configs:
        m = statistics.median(times[name])
        print(f"| {name} | {m * 1000:.0f} | {m / base:.2f} |")


def tradeoff(out: Path, path: Path, configs: list[str]) -> Path:
    """The trade-off the defaults were chosen on, one panel per textured style: style taken
    (x) against the drop of shift equivariance at 1 pixel below 4 (y, dB; 0 is no drop), a
    point per run of each configuration named, the old defaults for reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(p.read_text()) for p in sorted((out / "rows").glob("*.json"))]
    styles = [s for s in STYLE_ORDER if s != "colorwheel"]  # no texture: nothing to stick to the grid
    fig, axes = plt.subplots(1, len(styles), figsize=(4 * len(styles), 4.2), sharey=True)
    for ax, style in zip(axes, styles):
        for i, config in enumerate(configs):
            runs = [r for r in rows if r["style"] == style and r["config"] == config]
            if runs:
                ax.scatter([r["style_taken"] for r in runs], [r["eq_t4"] - r["eq_t1"] for r in runs],
                           label=config, color=f"C{i}", s=28)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_title(style)
        ax.set_xlabel("style taken (fixed yardstick)")
    axes[0].set_ylabel("EQ-T drop at 1 px (dB): EQ-T 4 - EQ-T 1")
    handles = {}
    for ax in axes:  # every configuration once, whichever panels it has points in
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    fig.legend(handles.values(), handles.keys(), fontsize=8, loc="lower center", ncol=min(len(handles), 4))
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def figure(out: Path, configs: list[str], styles: list[str], path: Path, *, seed: int = 0) -> Path:
    """One row per style: the style, then per configuration its astronaut output and a 64 px
    crop of it at 4x pixel zoom (nearest neighbour: every pixel a square, nothing smoothed)."""
    from PIL import ImageDraw

    from models.builtin_images import load_style

    cell, pad = 256, 6
    sheet = Image.new("RGB", (cell + len(configs) * 2 * (cell + pad), len(styles) * (cell + pad) + 20), "white")
    draw = ImageDraw.Draw(sheet)
    for j, name in enumerate(configs):
        draw.text((cell + pad + j * 2 * (cell + pad), 4), f"{name}: output, and 4x zoom", fill="black")
    for i, style in enumerate(styles):
        y = 20 + i * (cell + pad)
        sheet.paste(load_style(style)[1].convert("RGB").resize((cell, cell)), (0, y))
        for j, name in enumerate(configs):
            image = Image.open(out / "images" / f"{name}-{style}-s{seed}.png").convert("RGB")
            x = cell + pad + j * 2 * (cell + pad)
            sheet.paste(image, (x, y))
            sheet.paste(image.crop((96, 96, 160, 160)).resize((cell, cell), Image.NEAREST), (x + cell + pad, y))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", default="old", help=f"comma-separated, of: {', '.join(CONFIGS)}")
    ap.add_argument("--styles", default=",".join(BUILTIN_STYLE_INFO), help="comma-separated [default: all built-in]")
    ap.add_argument("--seeds", default="0", help="comma-separated [default: 0]")
    ap.add_argument("--steps", type=int, default=None, help="[default: TrainConfig's]")
    ap.add_argument("--out", type=Path, default=Path("runs/sweep"))
    ap.add_argument("--report", action="store_true", help="print the table of what is measured so far")
    ap.add_argument("--step-time", action="store_true",
                    help="time the training step of each of --configs (the first is the baseline)")
    ap.add_argument("--tradeoff", type=Path, default=None,
                    help="write the plot of style taken against the EQ-T drop for --configs here")
    ap.add_argument("--style-levels", action="store_true",
                    help="print each built-in style's own checkerboard score above the photos' (markdown)")
    ap.add_argument("--remeasure", action="store_true",
                    help="measure again the runs whose rows lack a measure and whose checkpoints are in OUT/runs")
    ap.add_argument("--figure", type=Path, default=None,
                    help="write a picture of --configs' outputs per style here (the first of --seeds)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--markdown", action="store_true", help="with --report: the table as docs/training.md has it")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads [default: torch's]; 1 lets two sweeps share a 2-core machine without "
                         "their thread pools spinning against each other")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.report:
        report(args.out, as_json=args.json, markdown=args.markdown)
        return
    if args.step_time:
        step_times(args.configs.split(","))
        return
    if args.tradeoff:
        print(tradeoff(args.out, args.tradeoff, args.configs.split(",")))
        return
    if args.style_levels:
        style_levels()
        return
    if args.remeasure:
        remeasure(args.out)
        return
    if args.figure:
        print(figure(args.out, args.configs.split(","), args.styles.split(","), args.figure,
                     seed=int(args.seeds.split(",")[0])))
        return
    for name in args.configs.split(","):
        if name not in CONFIGS:
            raise SystemExit(f"unknown configuration {name!r}; valid: {', '.join(CONFIGS)}")
    (args.out / "rows").mkdir(parents=True, exist_ok=True)
    for seed in [int(s) for s in args.seeds.split(",")]:
        for name in args.configs.split(","):
            for style in args.styles.split(","):
                target = args.out / "rows" / f"{name}-{style}-s{seed}.json"
                if target.exists():
                    continue
                row = run_one(name, style, seed, steps=args.steps, out=args.out)
                target.write_text(json.dumps(row, indent=1))
                print(json.dumps({k: row[k] for k in ("config", "style", "seed", "seconds", *KEYS)}), flush=True)


if __name__ == "__main__":
    main()
