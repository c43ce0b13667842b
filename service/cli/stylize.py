"""`checkerless stylize` and `checkerless stylize-video`: a trained network applied to image
files or a video, locally (no server), with the stylise options (models/stylize_options.py):
a style or mix of a several-style network, a strength, and the photo's colours."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from models.config import STYLIZE_MEMORY_BUDGET_GIB
from models.stylize_options import COLOR_MODES, DEFAULT_COLORS, DEFAULT_STRENGTH, VIDEO_SUFFIXES, StylizeOptions
from models.vocabulary import PRECISIONS

out = Console()
err = Console(stderr=True)

StyleOpt = Annotated[Optional[str], typer.Option("--style", help="Style index of a several-style network (0 is the first; default 0).")]
MixOpt = Annotated[Optional[str], typer.Option("--mix", help="Weights over a several-style network's styles, one per style, like 0.5,0.5 (normalised to sum 1).")]
StrengthOpt = Annotated[str, typer.Option("--strength", help="0..1: 1 is the network's output, 0 the photo; between, a blend of the two.")]
ColorsOpt = Annotated[str, typer.Option("--colors", help=f"{'|'.join(COLOR_MODES)}: keep the style's colours, or the photo's (luminance-only transfer, or its colour mean and covariance).")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu or gpu.")]
TileOpt = Annotated[Optional[int], typer.Option(help="Stylise in tiles of this many pixels (a multiple of 4, at least 64), with whole-image statistics. Default: only images too large for --memory-budget.")]
BudgetOpt = Annotated[float, typer.Option(help="GiB an untiled image may take; larger ones are tiled.", min=0.01)]


def check_precision_option(value: str | None) -> str | None:
    """A --precision value (torch-free: the CLI checks it before torch loads), or a usage error."""
    if value is not None and value not in PRECISIONS:
        raise typer.BadParameter(f"precision must be one of {', '.join(PRECISIONS)}, not {value!r}")
    return value


PRECISION_HELP = ("Arithmetic: bf16 (bf16 autocast: convolutions in bf16, statistics and output in fp32), 32, or auto: "
                  "bf16 where this machine has bf16 matrix units (a CUDA GPU, a CPU with AMX-BF16 or AVX512_BF16), "
                  "else 32.")
PrecisionOpt = Annotated[str, typer.Option("--precision", metavar="[auto|32|bf16]", callback=check_precision_option,
                                           help=PRECISION_HELP)]


def _label(resolved: str) -> str:
    return "fp32" if resolved == "32" else resolved


def _options(style: str | None, mix: str | None, strength: str, colors: str) -> StylizeOptions:
    """The options, or a usage error (exit 2) naming the option at fault."""
    for hint, kwargs in (("--style", {"style": style}), ("--mix", {"mix": mix}),
                         ("--strength", {"strength": strength}), ("--colors", {"colors": colors})):
        try:
            StylizeOptions.parse(**kwargs)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint=hint) from None
    try:
        return StylizeOptions.parse(style=style, mix=mix, strength=strength, colors=colors)
    except ValueError as e:  # --style and --mix together
        raise typer.BadParameter(str(e), param_hint="--style/--mix") from None


def stylize(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint written by `checkerless train`.")],
    inputs: Annotated[list[Path], typer.Argument(help="Image files and/or folders (searched recursively).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the stylised PNGs.")] = Path("stylized"),
    style: StyleOpt = None,
    mix: MixOpt = None,
    strength: StrengthOpt = str(DEFAULT_STRENGTH),
    colors: ColorsOpt = DEFAULT_COLORS,
    device: DeviceOpt = "auto",
    tile: TileOpt = None,
    memory_budget: BudgetOpt = STYLIZE_MEMORY_BUDGET_GIB,
    precision: PrecisionOpt = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Stylise images with a trained network: one PNG per input, same size as the input."""
    options = _options(style, mix, strength, colors)
    from models.stylize import stylize_files

    # auto is resolved there, by the machine and the network (models/stylize.py stylize_precision).
    results, skipped = stylize_files(checkpoint, inputs, out_dir, style=options.selection, strength=options.strength,
                                     colors=options.colors, device=device, tile=tile,
                                     memory_budget=int(memory_budget * 2**30), precision=precision)
    resolved = results[0].precision if results else precision
    if as_json:
        print(json.dumps({"outputs": [{"input": str(r.source), "output": str(r.output), "width": r.size[0],
                                       "height": r.size[1]} for r in results],
                          "options": options.to_dict(), "precision": resolved,
                          "skipped": [{"file": f, "reason": r} for f, r in skipped]}, indent=2))
        return
    for f, r in skipped:
        err.print(f"[yellow]skipped[/] {r}")
    for r in results:
        out.print(f"{r.source} -> {r.output} ({r.size[0]}x{r.size[1]})")
    out.print(f"arithmetic: {_label(resolved)}" + (f" (--precision {precision})" if precision == "auto" else ""),
              highlight=False)


def stylize_video(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint written by `checkerless train`.")],
    video: Annotated[Path, typer.Argument(help="A video file ffmpeg reads (mp4, mov, mkv, webm, avi...).")],
    out_file: Annotated[Path, typer.Option("--out", help="The stylised video: .mp4, .mov or .mkv (H.264, the audio kept as AAC).")] = Path("stylized.mp4"),
    style: StyleOpt = None,
    mix: MixOpt = None,
    strength: StrengthOpt = str(DEFAULT_STRENGTH),
    colors: ColorsOpt = DEFAULT_COLORS,
    device: DeviceOpt = "auto",
    tile: TileOpt = None,
    memory_budget: BudgetOpt = STYLIZE_MEMORY_BUDGET_GIB,
    precision: PrecisionOpt = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON, no progress bar.")] = False,
) -> None:
    """Stylise a video frame by frame: the same frame count, rate and size, the audio kept; prints its flicker."""
    options = _options(style, mix, strength, colors)
    if out_file.suffix.lower() not in VIDEO_SUFFIXES:
        raise typer.BadParameter(f"write the video as {', '.join(VIDEO_SUFFIXES)}, got {out_file.name}", param_hint="--out")
    from models.checkpoint import load_network
    from models.hardware import resolve_accelerator
    from models.video import VideoError, stylize_video as run

    if tile is not None:
        from models.tiling import check_tile

        check_tile(tile)
    net, _ = load_network(checkpoint)
    net.select_style(0 if options.selection is None else options.selection)  # a bad index or mix fails here
    net.to("cuda" if resolve_accelerator(device) == "gpu" else "cpu")
    if not video.is_file():
        raise VideoError(f"{video}: no such file")
    kwargs = dict(style=options.selection, strength=options.strength, colors=options.colors, tile=tile,
                  memory_budget=int(memory_budget * 2**30), precision=precision)
    if as_json:
        result = run(net, video, out_file, **kwargs)
        print(json.dumps({**result.to_dict(), "input": str(video), "options": options.to_dict()}, indent=2))
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("frames"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err) as bar:
        task = bar.add_task("frames", total=None)
        result = run(net, video, out_file, progress=lambda done, total: bar.update(task, completed=done, total=total),
                     **kwargs)
    f = result.flicker
    fmt = lambda v: "n/a (no still pixels)" if v is None else f"{v:.2f}"  # noqa: E731
    out.print(f"{video} -> {result.output}: {result.frames} frames, {result.width}x{result.height} at "
              f"{result.fps:g} fps{', audio kept' if result.has_audio else ''}, {result.seconds:.1f}s, {_label(result.precision)}\n"
              f"flicker (8-bit levels where the input holds still): input {fmt(f['input'])}, output {fmt(f['output'])}",
              soft_wrap=True)
