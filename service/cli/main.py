"""The `checkerless` command line.

Every failure a user can cause ends as one line on stderr and a non-zero exit: usage errors
(exit 2) and bad input (exit 1). Heavy imports (torch) happen inside the commands that need
them, so `--help` is fast.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from models.config import DEFAULTS, LIMITS, MAX_STYLES  # torch-free: the defaults and limits, written once
from models.vocabulary import LOSS_POOLINGS
from service.cli.stylize import check_precision_option  # torch-free, like this module's top

app = typer.Typer(
    name="checkerless",
    help="Train style-transfer networks and measure their checkerboard artifacts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)


def _add_subcommands() -> None:
    from service.cli.artifacts import app as artifacts_app
    from service.cli.content_sets import app as content_sets_app
    from service.cli.export import export
    from service.cli.keys import keys_app
    from service.cli.loadtest import loadtest
    from service.cli.jobs import jobs_app
    from service.cli.launch import serve, worker
    from service.cli.soak import soak
    from service.cli.stylebench import stylebench
    from service.cli.stylize import stylize, stylize_video
    from service.cli.usage import usage_app

    app.add_typer(artifacts_app, name="artifacts")
    app.add_typer(content_sets_app, name="content-sets")
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(keys_app, name="keys")
    app.add_typer(usage_app, name="usage")
    app.command()(serve)
    app.command()(worker)
    app.command()(loadtest)
    app.command()(soak)
    app.command(name="stylize-bench")(stylebench)
    app.command()(export)
    app.command()(stylize)
    app.command(name="stylize-video")(stylize_video)


_add_subcommands()


def _quiet_lightning() -> None:
    """Lightning's banners and tips are noise at a terminal; real warnings still show."""
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*weights_only.*")
    warnings.filterwarnings("ignore", message=".*litlogger.*")


@app.command()
def decoders(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the decoder names: what each upsampling layer does and how its kernels overlap."""
    from models.vocabulary import DECODER_INFO

    rows = [{"name": d.name, "layer": d.layer, "overlap": d.overlap} for d in DECODER_INFO.values()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("name", "layer", "overlap", title="decoders (one name, or one per stage: resize-nearest,deconv)")
    for r in rows:
        table.add_row(r["name"], r["layer"], r["overlap"])
    out.print(table)


@app.command()
def downsamples(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the encoder's downsampling names (train --downsample): what each layer does, and where it comes from."""
    from models.vocabulary import DOWNSAMPLE_INFO

    rows = [{"name": d.name, "layer": d.layer, "reference": d.reference} for d in DOWNSAMPLE_INFO.values()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("name", "layer", "reference", title="downsampling (one name, or one per stage: blur-stride,stride-conv)")
    for r in rows:
        table.add_row(r["name"], r["layer"], r["reference"])
    out.print(table)


@app.command()
def train(
    styles: Annotated[Optional[list[str]], typer.Argument(metavar="STYLE...", help=f"Style image files or built-in styles (ihc, hubble, colorwheel, gravel, brick); several (up to {MAX_STYLES}) train one network that holds them all (stylize --style N picks one).")] = None,
    content: Annotated[Optional[Path], typer.Option(help="Folder of content images (searched recursively); default: scikit-image's built-in photographs.")] = None,
    decoder: Annotated[str, typer.Option(help="Decoder name, or one per stage comma-separated (see `checkerless decoders`).")] = DEFAULTS.decoder,
    size: Annotated[int, typer.Option(help="Crop size in pixels.")] = DEFAULTS.size,
    steps: Annotated[Optional[int], typer.Option(help=f"Optimiser steps (default: {DEFAULTS.steps}; with --resume: the checkpoint's).")] = None,
    batch: Annotated[int, typer.Option(help="Crops per step.")] = DEFAULTS.batch,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = DEFAULTS.lr,
    content_weight: Annotated[float, typer.Option(help="Weight of the relu2_2 content loss.")] = DEFAULTS.content_weight,
    style_weight: Annotated[float, typer.Option(help="Weight of the Gram style loss.")] = DEFAULTS.style_weight,
    tv_weight: Annotated[float, typer.Option(help="Weight of the total-variation loss.")] = DEFAULTS.tv_weight,
    style_size: Annotated[Optional[int], typer.Option(help="Shorter side of the style image (default: the crop size).")] = None,
    seed: Annotated[int, typer.Option(help="Seed: same seed, same initial shared weights and data order.")] = DEFAULTS.seed,
    loss_network: Annotated[str, typer.Option(help="vgg19 (offline, default) or vgg16 (torchvision's weights file).")] = DEFAULTS.loss_network,
    downsample: Annotated[str, typer.Option(help="The encoder's downsampling: one name, or one per stage comma-separated (see `checkerless downsamples`).")] = DEFAULTS.downsample,
    loss_pooling: Annotated[str, typer.Option(help=f"The loss network's pooling: {' or '.join(LOSS_POOLINGS)}.")] = DEFAULTS.loss_pooling,
    stability_weight: Annotated[float, typer.Option(help="Weight of the stability loss (the output should not change when the input shifts by a pixel or is lightly noised; reduces flicker in video); 0: off.")] = DEFAULTS.stability_weight,
    stability_shift: Annotated[str, typer.Option(help="The shifts the stability loss asks the network to follow: one (one pixel diagonally) or subgrid (0 to 3 pixels on each axis, drawn each step).")] = DEFAULTS.stability_shift,
    filtered_relu: Annotated[bool, typer.Option("--filtered-relu/--plain-relu", help="ReLUs below full resolution filtered (the network follows sub-grid shifts of the photo; docs/training.md), or plain (a faster step).")] = DEFAULTS.filtered_relu,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints.")] = DEFAULTS.checkpoint_every,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder: last.ckpt, logs/, preview.png.")] = Path("runs/style"),
    resume: Annotated[Optional[Path], typer.Option(help="Continue from this checkpoint (settings come from it).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or gpu.")] = "auto",
    devices: Annotated[int, typer.Option(help="GPUs (or, on the CPU, processes) to train on with DDP; each takes its slice of every batch, which must divide by it.", min=1)] = 1,
    workers: Annotated[Optional[int], typer.Option(help="DataLoader worker processes (default: 0 on the CPU, up to 4 with a GPU).")] = None,
    compile: Annotated[str, typer.Option(help="torch.compile the training step: on, off, or auto (on with a GPU only: on the CPU it measured slower than eager; docs/performance.md).")] = "auto",
    precision: Annotated[Optional[str], typer.Option("--precision", metavar="[auto|32|bf16]", callback=check_precision_option, help="Arithmetic of the training step: bf16 (bf16 autocast; Grams, losses and Adam stay fp32), 32, or auto (default): bf16 where this machine has bf16 matrix units (a CUDA GPU, a CPU with AMX-BF16 or AVX512_BF16), else 32. With --resume: the checkpoint's setting.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON, no progress bar.")] = False,
) -> None:
    """Train a transfer network on one style, or on several in one network. Ctrl-C stops cleanly and keeps a checkpoint."""
    from models.config import TrainConfig  # torch-free: bad settings are told before torch loads

    if resume is None and not styles:
        raise typer.BadParameter("give a STYLE image (or --resume a checkpoint)", param_hint="STYLE")
    if resume is not None and styles:
        raise typer.BadParameter("--resume takes its styles from the checkpoint; give no STYLE", param_hint="STYLE")
    if styles and len(styles) > MAX_STYLES:
        raise typer.BadParameter(f"at most {MAX_STYLES} styles, got {len(styles)}", param_hint="STYLE")
    style = None if not styles else styles[0] if len(styles) == 1 else list(styles)
    if workers is not None and workers < 0:
        raise typer.BadParameter("must be >= 0", param_hint="--workers")
    if resume is not None and precision is not None:
        raise typer.BadParameter("--resume takes its precision setting from the checkpoint; give no --precision",
                                 param_hint="--precision")
    if resume is not None and not resume.is_file():  # told now, not after torch and Lightning load (10 s)
        raise ValueError(f"{resume}: no such checkpoint file")
    config = None
    if resume is None:
        config = TrainConfig(
            decoder=decoder, size=size, steps=DEFAULTS.steps if steps is None else steps, batch=batch, lr=lr,
            content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight,
            style_size=style_size, seed=seed, loss_network=loss_network, checkpoint_every=checkpoint_every,
            downsample=downsample, loss_pooling=loss_pooling, stability_weight=stability_weight,
            stability_shift=stability_shift, filtered_relu=filtered_relu, precision=precision or DEFAULTS.precision,
        )
    elif steps is not None and steps < 1:
        raise ValueError(f"steps must be between 1 and 1000000, got {steps}")
    from models.builtin_images import load_style  # torch-free: a missing or broken input is told in a second
    from models.images import check_folder
    from models.preview_size import preview_sizes

    for s in styles or []:
        load_style(s)
    if content is not None:
        check_folder(content)
    preview_sizes()  # a bad CHECKERLESS_PREVIEW_SIZE, told now rather than after the training

    from models.checkpoint import load_network
    from models.preview import save_preview
    from models.training import train as run_training

    _quiet_lightning()  # after the import: Lightning sets its log level when imported

    interrupted = []
    def on_sigint(signum, frame):  # first Ctrl-C: finish the step, checkpoint, stop
        interrupted.append(True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if os.environ.get("LOCAL_RANK", "0") == "0":  # Lightning's rank of a DDP process: one line, not one per rank
            err.print("stopping after this step (Ctrl-C again to abort without a checkpoint)")
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        result = run_training(config, out_dir=out_dir, style=style, content=content, resume=resume,
                              steps=steps if resume is not None else None, device=device, devices=devices,
                              num_workers=workers, compile=compile, progress=not as_json,
                              should_stop=lambda: bool(interrupted))
    finally:
        signal.signal(signal.SIGINT, previous)
    if result.rank != 0:  # one of the DDP ranks Lightning started as this same command: rank 0 reports
        return

    net, info = load_network(result.checkpoint)
    preview = save_preview(net, Path(out_dir) / "preview.png")
    computed = _trained_precision(result.checkpoint, info.config.precision, device)
    summary = {
        "checkpoint": str(result.checkpoint), "preview": str(preview), "decoder": info.config.decoder,
        "precision": computed, "precision_setting": info.config.precision,  # what the steps ran in; what was asked
        "downsample": info.config.downsample, "loss_pooling": info.config.loss_pooling,
        "styles": getattr(info, "styles", None) or [info.style_name],  # several: CheckpointInfo.styles
        "step": result.step, "steps": result.steps, "stopped": result.stopped,
        "seconds": round(result.seconds, 2), "final": result.final,
        "skipped": [{"file": f, "reason": r} for f, r in result.skipped],
        "probe": [row.to_dict() for row in result.artifacts],  # models/probe_row.py
    }
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    for f, r in result.skipped:
        err.print(f"[yellow]skipped[/] {r}")
    state = "stopped at" if result.stopped else "finished"
    out.print(f"{state} step {result.step}/{result.steps} in {result.seconds:.1f}s; "
              f"loss {result.final.get('loss', float('nan')):.4g}; "
              f"{'fp32' if computed == '32' else computed} (--precision {info.config.precision})", highlight=False)
    if result.artifacts:  # the probe (the panel at 128 px) at this run's first and last step
        first, last = result.artifacts[0], result.artifacts[-1]
        change = lambda k, f: f"{format(getattr(first, k), f)} → {format(getattr(last, k), f)}"  # noqa: E731
        out.print(f"probe, step {first.step} → {last.step} (scores: higher is worse; distances: lower is better)\n"
                  f"  checkerboard: period 2 {change('artifact_p2', '+.1f')} dB, period 4 {change('artifact_p4', '+.1f')} dB\n"
                  f"  style distance {change('style_distance', '.3g')}, content distance {change('content_distance', '.3g')}")
    out.print(f"checkpoint: {result.checkpoint}\npreview:    {preview}")


def _trained_precision(checkpoint: Path, setting: str, device: str) -> str:
    """"bf16" or "32": what the run's steps computed in, as its checkpoint records it (Lightning's
    "bf16-mixed" or "32-true"), else what the setting means on this machine."""
    from models.checkpoint import read_checkpoint
    from models.hardware import resolve_accelerator, resolve_precision

    recorded = read_checkpoint(checkpoint)[1]["checkerless"].get("precision")
    if recorded:
        return "bf16" if recorded.startswith("bf16") else "32"
    return resolve_precision(setting, resolve_accelerator(device))


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder (--offline: runs and figures; else the server's data).")] = Path("runs/demo"),
    style: Annotated[str, typer.Option(help="Style image file or built-in style.")] = "ihc",
    decoders: Annotated[str, typer.Option(help="Decoders to compare, separated by spaces (a per-stage mix uses commas).")] = f"deconv {DEFAULTS.decoder}",
    steps: Annotated[int, typer.Option(help="Optimiser steps per variant.")] = 100,
    size: Annotated[int, typer.Option(help="Crop size in pixels.")] = DEFAULTS.size,
    batch: Annotated[int, typer.Option(help="Crops per step.")] = DEFAULTS.batch,
    style_weight: Annotated[float, typer.Option(help="Weight of the Gram style loss.")] = DEFAULTS.style_weight,
    seed: Annotated[int, typer.Option(help="Seed shared by every variant.")] = DEFAULTS.seed,
    photo: Annotated[str, typer.Option(help="Built-in photo to score (--offline: to stylise at full size).")] = "chelsea",
    port: Annotated[int, typer.Option(help="Port of the embedded server.", min=1, max=65535)] = 8000,
    offline: Annotated[bool, typer.Option(help="No server: train in this process and write figures (comparison.png, artifact_curves.png).")] = False,
    exit_after: Annotated[bool, typer.Option("--exit", help="Stop the server once the table is printed.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu or gpu (--offline).")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON, no progress bars.")] = False,
    seeds: Annotated[int, typer.Option(help="Runs per variant (seed, seed + 1, ...; not with --offline): the table adds "
                                       "the final period-2 score's mean and 95% interval.", min=1, max=8)] = 1,
) -> None:
    """Train deconv vs the default decoder alike on the built-in photos, print their artifact scores, and serve the comparison page."""
    from models.config import TrainConfig

    config = TrainConfig(steps=steps, size=size, batch=batch, style_weight=style_weight, seed=seed)
    if not offline:
        from service.cli.demo_service import demo_through_service

        return demo_through_service(config=config, style=style, variants=decoders.split(), photo=photo, port=port,
                                    data_dir=out_dir / "server", exit_after=exit_after, as_json=as_json, seeds=seeds)
    if seeds != 1:
        raise ValueError("--seeds needs the service; --offline trains each decoder once")
    from models.demo import run_demo

    _quiet_lightning()
    result = run_demo(out_dir=out_dir, config=config, style=style, decoders=decoders.split(), photo=photo,
                      device=device, progress=not as_json)
    rows = [{"decoder": v.decoder, "period2_db": round(v.scores[2], 2), "period4_db": round(v.scores[4], 2),
             "final_loss": round(v.final_loss, 1), "seconds": round(v.seconds, 1), "image": str(v.image),
             "checkpoint": str(v.checkpoint), "curve": v.curve} for v in result.variants]
    if as_json:
        print(json.dumps({"photo": result.photo, "figure": str(result.figure), "curves": str(result.curves),
                          "variants": rows}, indent=2))
        return
    from service.cli.demo_table import offline_table

    out.print(offline_table(rows, result.photo))
    for r in rows:
        out.print(f"{r['decoder']}: {r['image']}", highlight=False, soft_wrap=True)
    out.print(f"side by side, with the pixel-level crop: {result.figure}", highlight=False, soft_wrap=True)
    out.print(f"artifact scores over training: {result.curves}", highlight=False, soft_wrap=True)


@app.command()
def bench(
    decoders: Annotated[str, typer.Option(help="Decoders or mixes separated by spaces; the first is the baseline.")] = "resize-nearest deconv deconv4 resize-bilinear subpixel",
    size: Annotated[int, typer.Option(help="Image side in pixels.", min=LIMITS["size"][0], max=LIMITS["size"][1])] = DEFAULTS.size,
    batch: Annotated[int, typer.Option(help="Images per batch.", min=LIMITS["batch"][0], max=LIMITS["batch"][1])] = DEFAULTS.batch,
    steps: Annotated[int, typer.Option(help="Timed repetitions (the median is reported).", min=1, max=1000)] = 5,
    warmup: Annotated[int, typer.Option(help="Untimed repetitions first.", min=0, max=100)] = 2,
    device: Annotated[str, typer.Option(help="auto, cpu or gpu.")] = "auto",
    reference: Annotated[bool, typer.Option("--reference", help="Instead: our training step and inference against the pytorch/examples recipe (docs/performance.md).")] = False,
    compiled: Annotated[bool, typer.Option("--compile/--no-compile", help="With --reference or --end-to-end: include the compiled variants (a first compile costs minutes on a small CPU).")] = True,
    tiling: Annotated[Optional[str], typer.Option("--tiling", help="Instead: stylise images of these sizes (e.g. '1024x1024 4096x3072') whole and in tiles; time, peak memory, PSNR.")] = None,
    tile: Annotated[int, typer.Option(help="With --tiling: the tile size in pixels.")] = 512,
    infer_sizes: Annotated[str, typer.Option(help="With --reference: the inference image sides, separated by spaces.")] = "256 512 1024",
    end_to_end: Annotated[bool, typer.Option("--end-to-end", help="Instead: `checkerless train` as whole processes against the recipe; the marginal time per step between --steps and 3x --steps runs.")] = False,
    job_path: Annotated[bool, typer.Option("--job-path", help="Instead: a training job through a service of its own (an embedded server) against the bare step of the network it trains, measured in this process (median of --steps); images/s of each and where the job's time per step goes.")] = False,
    job_steps: Annotated[int, typer.Option(help="With --job-path: the job's steps [default: a default job's].", min=4, max=LIMITS["steps"][1])] = DEFAULTS.steps,
    repeats: Annotated[int, typer.Option(help="With --end-to-end: runs of each variant and length, alternated (the median is reported).", min=1, max=20)] = 2,
    stylize: Annotated[Optional[str], typer.Option("--stylize", metavar="WxH", help="Instead: stylise scikit-image's photos (chelsea, astronaut, coffee) cropped and resized to WxH (e.g. 1024x768), as `checkerless stylize` does, at --precision and at 32 (the baseline), alternated; median ms, ratio to fp32, PSNR against fp32.")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(help="With --stylize: a trained checkpoint (default: an untrained network of the training defaults: the same arithmetic, so the same speed; its PSNR says little).")] = None,
    precision: Annotated[str, typer.Option("--precision", metavar="[auto|32|bf16]", callback=check_precision_option, help="Arithmetic of the timed runs: bf16 (bf16 autocast), 32, or auto: bf16 where this machine has bf16 matrix units, else 32. With --reference: adds the bf16 variants when bf16.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Time inference and training steps per decoder, as ratios to a baseline measured in the same run."""
    from models.bench import bench as run_bench
    from models.hardware import resolve_accelerator, resolve_precision
    from models.vocabulary import decoder_label, parse_decoder

    if job_path:
        from service.cli import job_bench

        result = job_bench.job_path(size=size, batch=batch, steps=job_steps, precision=precision, repeats=steps)
        return job_bench.print_job_path(result, _where(resolve_accelerator("auto")), as_json)
    if end_to_end:
        return _bench_end_to_end(size=size, batch=batch, short=steps, repeats=repeats, precision=precision,
                                 compiled=compiled, as_json=as_json)
    accelerator = resolve_accelerator(device)
    if stylize:  # resolved as `checkerless stylize` resolves it, by the network too
        return _bench_stylize(stylize, checkpoint=checkpoint, accelerator=accelerator, precision=precision,
                              repeats=steps, as_json=as_json)
    resolved = resolve_precision(precision, accelerator)
    if tiling:
        return _bench_tiling(tiling, tile=tile, accelerator=accelerator, precision=precision, as_json=as_json)
    if reference:
        try:
            sides = [int(v) for v in infer_sizes.split()]
        except ValueError:
            raise typer.BadParameter(f"whole numbers separated by spaces, got {infer_sizes!r}", param_hint="--infer-sizes") from None
        return _bench_reference(size=size, batch=batch, repeats=steps, accelerator=accelerator,
                                compiled=compiled, infer_sizes=sides, precision=resolved, as_json=as_json)
    names = [decoder_label(parse_decoder(d)) for d in decoders.split()]
    rows = run_bench(names, size=size, batch=batch, steps=steps, warmup=warmup,
                     device="cuda" if accelerator == "gpu" else "cpu", precision=resolved)
    where = _where(accelerator)
    if as_json:
        print(json.dumps({"device": where, "size": size, "batch": batch, "precision": resolved,
                          "rows": [r.as_dict() for r in rows]}, indent=2))
        return
    table = Table("decoder", "params", "inference ms", "x baseline", "train step ms", "x baseline", "peak MiB",
                  title=f"{where}; {_arith(resolved)}; batch {batch} at {size}px; median of {steps}; baseline {rows[0].decoder}")
    for r in rows:
        table.add_row(r.decoder, f"{r.params:,}", f"{r.infer_ms:.1f}", f"{r.infer_ratio:.2f}", f"{r.step_ms:.1f}",
                      f"{r.step_ratio:.2f}", "n/a (CPU)" if r.peak_mib is None else f"{r.peak_mib:.0f}")
    out.print(table)


def _bench_end_to_end(*, size: int, batch: int, short: int, repeats: int, precision: str, compiled: bool,
                      as_json: bool) -> None:
    from service.cli.train_bench import end_to_end

    rows = end_to_end(short=short, long=3 * short, size=size, batch=batch, repeats=repeats, precision=precision,
                      compile_variants=("off", "on") if compiled else ("off",))
    if as_json:
        print(json.dumps({"size": size, "batch": batch, "precision": precision, "rows": [r.as_dict() for r in rows]},
                         indent=2))
        return
    table = Table("variant", f"{short} steps s", f"{3 * short} steps s", "s per step", "start-up s", "x reference",
                  title=f"whole processes on the CPU, {size} px, batch {batch}, train --precision {precision} "
                        f"(the reference in fp32); median of {repeats}, alternated",
                  title_justify="left")
    for r in rows:
        table.add_row(r.variant, f"{r.short_s:.1f}", f"{r.long_s:.1f}", f"{r.step_s:.3f}", f"{r.startup_s:.1f}",
                      f"{r.speedup:.2f}")
    out.print(table)


def _where(accelerator: str) -> str:
    """The machine a bench ran on, for its table: the GPU's name, or the CPU's model and threads."""
    import torch

    from models.hardware import cpu_model

    if accelerator == "gpu":
        return torch.cuda.get_device_name(0)
    return f"CPU {cpu_model()}, {torch.get_num_threads()} threads"


def _arith(resolved: str) -> str:
    return "fp32" if resolved == "32" else "bf16 autocast"


def _sizes(sizes: str, hint: str) -> list[tuple[int, int]]:
    try:
        parsed = [tuple(int(v) for v in s.lower().split("x")) for s in sizes.split()]
    except ValueError:
        raise typer.BadParameter(f"sizes are WIDTHxHEIGHT, e.g. 4096x3072; got {sizes!r}", param_hint=hint) from None
    if not parsed or any(len(p) != 2 or min(p) < 16 for p in parsed):
        raise typer.BadParameter(f"sizes are WIDTHxHEIGHT, each at least 16; got {sizes!r}", param_hint=hint)
    return parsed  # type: ignore[return-value]


def _bench_stylize(sizes: str, *, checkpoint: Optional[Path], accelerator: str, precision: str, repeats: int,
                   as_json: bool) -> None:
    from models.bench import STYLIZE_PHOTOS, bench_stylize

    parsed = _sizes(sizes, "--stylize")
    if checkpoint is not None:
        from models.checkpoint import load_network

        net, info = load_network(checkpoint)
        network = f"{checkpoint} ({info.config.decoder}, step {info.step})"
    else:
        net, network = _untrained_default_network()
    from models.stylize import stylize_precision

    precision = stylize_precision(precision, "cuda" if accelerator == "gpu" else "cpu", net)
    rows = [r for w, h in parsed
            for r in bench_stylize(net, width=w, height=h, precision=precision, repeats=repeats,
                                   device="cuda" if accelerator == "gpu" else "cpu")]
    where = _where(accelerator)
    if as_json:
        print(json.dumps({"device": where, "network": network, "precision": precision, "repeats": repeats,
                          "rows": [r.as_dict() for r in rows]}, indent=2))
        return
    table = Table("photo", "size", "arithmetic", "median ms", "x fp32 time", "speed-up", "PSNR vs fp32",
                  title=f"{where}; stylize_tensor, whole images, {network}; median of {repeats}, alternated",
                  title_justify="left")
    for r in rows:
        table.add_row(r.photo, r.size, _arith(r.precision), f"{r.ms:.0f}", f"{r.ratio:.2f}", f"{r.speedup:.2f}",
                      "baseline" if r.psnr_db is None else f"{r.psnr_db:.1f} dB")
    out.print(table)
    if precision != "32":
        import statistics

        speedups = [r.speedup for r in rows if r.precision != "32"]
        out.print(f"{_arith(precision)} against fp32 over {len(speedups)} image(s) of {', '.join(STYLIZE_PHOTOS)}: "
                  f"median speed-up {statistics.median(speedups):.2f}x", highlight=False)


def _untrained_default_network():
    """The network `checkerless train` trains by default, untrained: the same arithmetic as a
    trained one, so the same speed (its outputs say little)."""
    import torch

    from models.transformer_net import TransformerNet

    torch.manual_seed(0)
    return TransformerNet.for_config(DEFAULTS).eval(), "an untrained network of today's defaults"


def _bench_tiling(sizes: str, *, tile: int, accelerator: str, precision: str, as_json: bool) -> None:
    from models.bench import bench_tiling
    from models.stylize import stylize_precision
    from models.tiling import check_tile

    parsed = _sizes(sizes, "--tiling")
    check_tile(tile)
    gpu = accelerator == "gpu"
    net, network = _untrained_default_network()
    precision = stylize_precision(precision, "cuda" if gpu else "cpu", net)  # as `checkerless stylize` resolves it
    rows = bench_tiling(net, parsed, tile=tile, device="cuda" if gpu else "cpu", precision=precision)
    where = _where(accelerator)
    if as_json:
        print(json.dumps({"device": where, "network": network, "precision": precision,
                          "rows": [r.as_dict() for r in rows]}, indent=2))
        return
    table = Table("image", "mode", "seconds", "peak MiB", "PSNR vs whole",
                  title=f"{where}; {_arith(precision)}; {network}", title_justify="left")
    for r in rows:
        table.add_row(r.size, r.mode, f"{r.seconds:.1f}", f"{r.peak_mib:.0f}", "" if r.psnr_db is None else f"{r.psnr_db:.1f} dB")
    out.print(table)
    if not gpu:
        out.print("peak MiB on the CPU: the process's peak resident memory above the start of each run.")


def _bench_reference(*, size: int, batch: int, repeats: int, accelerator: str, compiled: bool, infer_sizes: list[int],
                     precision: str, as_json: bool) -> None:
    import torch

    from models.bench import bench_reference, cpu_bf16_peak_gflops, cpu_peak_gflops, gpu_bf16_peak_gflops
    from models.hardware import cpu_model

    gpu = accelerator == "gpu"
    rows = bench_reference(size=size, batch=batch, repeats=repeats, device="cuda" if gpu else "cpu", compiled=compiled,
                           infer_sizes=infer_sizes, precision=precision)
    if gpu:
        name = torch.cuda.get_device_name(0)
        peak, how = gpu_bf16_peak_gflops(name), "dense bf16 peak"
        where = f"{name}; {how} {peak / 1000:.0f} TFLOP/s" if peak else f"{name} (bf16 peak unknown)"
    else:
        peak, how = cpu_peak_gflops()
        bf16_peak, bf16_how = cpu_bf16_peak_gflops()
        where = (f"CPU {cpu_model()}, {torch.get_num_threads()} threads; nominal fp32 peak {peak:.0f} GFLOP/s ({how}); "
                 + (f"bf16 peak {bf16_peak:.0f} GFLOP/s ({bf16_how})" if bf16_peak else f"bf16: {bf16_how}")
                 + "; boost clocks can exceed them")
    if as_json:
        print(json.dumps({"device": where, "peak_gflops": peak, "bf16_peak_gflops": peak if gpu else bf16_peak,
                          "rows": [r.as_dict() for r in rows]}, indent=2))
        return
    cpu_bf16 = not gpu and bf16_peak
    table = Table("task", "variant", "median ms", "x reference", "images/s", "GFLOP/img", "TFLOP/s" if gpu else "GFLOP/s",
                  "of bf16 peak" if gpu else "of fp32 peak", *(["of bf16 peak"] if cpu_bf16 else []), "peak MiB",
                  "first 2 calls s", title=f"{where}; median of {repeats}, alternated", title_justify="left")
    for r in rows:
        rate = f"{r.gflops / 1000:.1f}" if gpu else f"{r.gflops:.0f}"
        images = f"{r.gflops / r.gflop:.0f}" if r.gflop else "?"
        table.add_row(r.task, r.variant, f"{r.ms:.2f}" if r.ms < 10 else f"{r.ms:.1f}", f"{r.speedup:.2f}", images,
                      f"{r.gflop:.1f}", rate, f"{r.gflops / peak:.0%}" if peak else "?",
                      *([f"{r.gflops / bf16_peak:.0%}"] if cpu_bf16 else []),
                      "" if r.peak_mib is None else f"{r.peak_mib:.0f}", f"{r.startup_s:.1f}")
    out.print(table)
    if not gpu:
        out.print("peak MiB on the CPU: the process's peak resident memory above the bench's start (approximate).")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; turn every user error into one line and an exit code."""
    command = typer.main.get_command(app)
    try:
        # Without standalone mode, click returns a typer.Exit's code instead of raising it.
        code = command.main(args=argv, prog_name="checkerless", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except typer.Exit as e:
        return e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted", highlight=False)
        return 130
    except typer.TyperException as e:  # usage errors: bad option, missing argument, bad value
        ctx = getattr(e, "ctx", None)
        if type(e).__name__ == "NoArgsIsHelpError":  # help was printed; nothing was asked
            return 0
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        _error(f"{e.format_message()}{hint}")
        return 2
    except (ValueError, OSError) as e:  # ImageError, CheckpointError, config errors...
        _error(str(e))
        return 1
    except Exception as e:
        # The API's answers, through the client library (checkerless_client: ApiError with the
        # API's detail and status, ApiUnreachable...). Not imported here (httpx's import would
        # slow every command): if a command raised one, the library is already loaded.
        library = sys.modules.get("checkerless_client")
        if library is None or not isinstance(e, library.CheckerlessError):
            raise
        _error(str(e))
        return 1


def _error(message: str) -> None:
    err.print(f"error: {' '.join(message.split())}", highlight=False, markup=False, soft_wrap=True)

def run() -> None:  # console-script entry point
    sys.exit(main())


if __name__ == "__main__":
    run()
