"""`checkerless jobs ...`: submit, list, show, watch, cancel, delete and stylise, through the HTTP API."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


from models.config import DEFAULTS
from models.vocabulary import PRECISIONS
from service.cli.api_client import ApiOpt, CliError, KeyOpt, _client, _files, _print_job, _watch, err, out

jobs_app = typer.Typer(help="Talk to a checkerless API: submit, watch, cancel, stylise.", no_args_is_help=True)


@jobs_app.command("submit")
def submit(
    styles: Annotated[list[str], typer.Argument(metavar="STYLE...", help="Style image files or built-in styles (ihc, hubble, colorwheel, gravel, brick); several train one network that holds them all.")],
    content: Annotated[Optional[list[Path]], typer.Option(help="Content image, folder or zip (repeatable); default: built-in photos.")] = None,
    decoder: Annotated[str, typer.Option(help="Decoder name or per-stage mix.")] = DEFAULTS.decoder,
    size: Annotated[int, typer.Option(help="Crop size.")] = DEFAULTS.size,
    steps: Annotated[int, typer.Option(help="Optimiser steps.")] = DEFAULTS.steps,
    batch: Annotated[int, typer.Option(help="Crops per step.")] = DEFAULTS.batch,
    seed: Annotated[int, typer.Option(help="Seed.")] = DEFAULTS.seed,
    downsample: Annotated[str, typer.Option(help="The encoder's downsampling (see `checkerless downsamples`).")] = DEFAULTS.downsample,
    loss_pooling: Annotated[str, typer.Option(help="The loss network's pooling: max or avg.")] = DEFAULTS.loss_pooling,
    stability_weight: Annotated[float, typer.Option(help="Weight of the stability loss; 0: off.")] = DEFAULTS.stability_weight,
    stability_shift: Annotated[str, typer.Option(help="The stability loss's shifts: one or subgrid.")] = DEFAULTS.stability_shift,
    filtered_relu: Annotated[bool, typer.Option("--filtered-relu/--plain-relu", help="Filtered ReLUs below full resolution, or plain ones (a faster step).")] = DEFAULTS.filtered_relu,
    precision: Annotated[str, typer.Option(help=f"The arithmetic it trains in: {', '.join(PRECISIONS)} (auto: bf16 where the worker's machine has bf16 matrix units, else fp32).")] = DEFAULTS.precision,
    watch: Annotated[bool, typer.Option(help="Show a progress bar until the job ends.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    api: ApiOpt = None,
    key: KeyOpt = None,
) -> None:
    """Upload the styles (and content), submit a training job, optionally watch it."""
    from service.core.builtin_styles import BUILTIN_STYLES, PREFIX

    for style in styles:  # every name checked before anything is uploaded
        if not Path(style).is_file() and style not in BUILTIN_STYLES:
            raise CliError(f"{style}: no such file (built-in styles: {', '.join(BUILTIN_STYLES)})")
    with _client(api, key) as client:
        # A file is uploaded (a file wins over a built-in of the same name); a name is the built-in's id.
        refs = [Path(s) if Path(s).is_file() else f"{PREFIX}{s}" for s in styles]
        content_set = None
        if content:
            cs = client.upload_content_set(_files(content))
            for s in cs.skipped:
                err.print(f"[yellow]skipped[/] {s['reason']}")
            content_set = cs.id
        job = client.submit(refs, content_set=content_set, decoder=decoder, size=size, steps=steps, batch=batch,
                            seed=seed, downsample=downsample, loss_pooling=loss_pooling,
                            stability_weight=stability_weight, stability_shift=stability_shift,
                            filtered_relu=filtered_relu, precision=precision)
        if watch:
            job = _watch(client, job.id)
        _print_job(job, as_json)
        if job.state == "failed":
            raise typer.Exit(1)


@jobs_app.command("list")
def list_jobs(
    limit: Annotated[Optional[int], typer.Option(help="Jobs per page (the server's default: 100; at most 1000).", min=1)] = None,
    cursor: Annotated[Optional[str], typer.Option(help="Start at this page: the cursor printed after the page before.")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every page, one after another.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    api: ApiOpt = None,
    key: KeyOpt = None,
) -> None:
    """List jobs, newest first, a page at a time (the next page's cursor is printed on stderr)."""
    with _client(api, key) as client:
        if every:  # page after page, each one's Link to the next
            jobs, after = list(client.jobs(limit=limit, cursor=cursor)), None
        else:
            page = client.jobs_page(limit=limit, cursor=cursor)
            jobs, after = page.items, page.next_cursor
    if as_json:
        print(json.dumps([j.to_json() for j in jobs], indent=2))
    else:
        table = Table("id", "state", "decoder", "step", "loss", "p2 dB", "created")
        for j in jobs:
            table.add_row(j.id, j.state, j.decoder, f"{j.step}/{j.steps}", f"{j.losses.get('loss', float('nan')):.4g}",
                          f"{j.artifacts.get('artifact_p2', float('nan')):+.1f}", j.to_json()["created_at"][:19])
        out.print(table)
    if after is not None:  # on stderr, one line (never wrapped), so --json output stays one JSON list
        print(f"more: checkerless jobs list --cursor {after}" + (f" --limit {limit}" if limit else ""),
              file=sys.stderr, flush=True)


@jobs_app.command("show")
def show(job_id: str, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False, api: ApiOpt = None, key: KeyOpt = None) -> None:
    """One job's state."""
    with _client(api, key) as client:
        _print_job(client.job(job_id), as_json)


@jobs_app.command("watch")
def watch_job(job_id: str, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False, api: ApiOpt = None, key: KeyOpt = None) -> None:
    """A progress bar until the job ends."""
    with _client(api, key) as client:
        job = _watch(client, job_id)
    _print_job(job, as_json)
    if job.state == "failed":
        raise typer.Exit(1)


@jobs_app.command("cancel")
def cancel(job_id: str, api: ApiOpt = None, key: KeyOpt = None) -> None:
    """Ask a job to stop (it keeps its last checkpoint)."""
    with _client(api, key) as client:
        client.cancel(job_id)
    out.print(f"cancel requested for job {job_id}")


@jobs_app.command("cancel-stylization")
def cancel_stylization(request_id: str, api: ApiOpt = None, key: KeyOpt = None) -> None:
    """Stop a stylisation (the id `stylize-video` prints): a queued one at once, a running one at its worker's
    next heartbeat."""
    with _client(api, key) as client:
        req = client.cancel_stylization(request_id)
    out.print(f"stylization {request_id}: " + ("cancelled" if req.state == "cancelled" else
                                              f"cancel requested ({req.state}); it stops within seconds"))


@jobs_app.command("delete")
def delete(job_id: str, api: ApiOpt = None, key: KeyOpt = None) -> None:
    """Delete a finished job and its stored files."""
    with _client(api, key) as client:
        client.delete_job(job_id)
    out.print(f"deleted job {job_id}")


# The stylise options as the API's form fields: checked there (models/stylize_options.py), so a
# bad value is the API's one-line 422.
JobStyleOpt = Annotated[Optional[str], typer.Option("--style", help="Which style of a several-style network: its index (from 0).")]
JobMixOpt = Annotated[Optional[str], typer.Option("--mix", help="A mix of the network's styles, one weight each: 0.5,0.5.")]
JobStrengthOpt = Annotated[Optional[str], typer.Option("--strength", help="How much style, 0 (the photo) to 1 (default).")]
JobColorsOpt = Annotated[Optional[str], typer.Option("--colors", help="style (default), luminance or histogram (the photo's colours).")]


def _options(style: str | None, mix: str | None, strength: str | None, colors: str | None) -> dict[str, str]:
    """The options as given (text), for the API's form: it checks them and says what is wrong."""
    return {k: v for k, v in {"style": style, "mix": mix, "strength": strength, "colors": colors}.items()
            if v is not None}


def _succeeded(req, *, what: str):
    if req.state != "succeeded":
        raise CliError(f"stylising {what} failed: {req.error}")
    return req


@jobs_app.command("stylize")
def stylize(
    job_id: str,
    images: Annotated[list[Path], typer.Argument(help="Image files or folders.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the stylised PNGs.")] = Path("stylized"),
    style: JobStyleOpt = None,
    mix: JobMixOpt = None,
    strength: JobStrengthOpt = None,
    colors: JobColorsOpt = None,
    api: ApiOpt = None,
    key: KeyOpt = None,
) -> None:
    """Stylise images with a finished job's network and download the PNGs."""
    files = _files(images)
    with _client(api, key) as client:
        req = client.request_stylization(job_id, files, **_options(style, mix, strength, colors))
        req = _succeeded(client.wait_stylization(req.id, poll_s=0.5), what="the images")
        out_dir.mkdir(parents=True, exist_ok=True)
        for (name, _data), o in zip(files, req.outputs):
            path = out_dir / f"{Path(name).stem}.png"
            client.output(req.id, o["index"], path)
            out.print(f"{name} -> {path} ({o['width']}x{o['height']})")


@jobs_app.command("stylize-video")
def stylize_video(
    job_id: str,
    video: Annotated[Path, typer.Argument(help="A video file ffmpeg reads (mp4, mov, mkv, webm...).")],
    out_file: Annotated[Path, typer.Option("--out", help="The stylised mp4.")] = Path("stylized.mp4"),
    style: JobStyleOpt = None,
    mix: JobMixOpt = None,
    strength: JobStrengthOpt = None,
    colors: JobColorsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    api: ApiOpt = None,
    key: KeyOpt = None,
) -> None:
    """Stylise a video with a finished job's network on the service (same frame count, rate and size, the audio
    kept) and download the mp4; prints its flicker."""
    if not video.is_file():
        raise CliError(f"{video}: no such file")
    with _client(api, key) as client:
        req = client.request_video_stylization(job_id, video, **_options(style, mix, strength, colors))
        if not as_json:  # on stderr: the id to stop it with from elsewhere
            err.print(f"stylization {req.id} queued (stop it: checkerless jobs cancel-stylization {req.id})",
                      highlight=False)
        with Progress(TextColumn("[bold]frames"), BarColumn(bar_width=24), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, disable=as_json) as bar:
            task = bar.add_task("frames", total=None)

            def frames(r) -> None:
                if r.progress:
                    bar.update(task, completed=r.progress["done"], total=r.progress["total"])

            req = _succeeded(client.wait_stylization(req.id, poll_s=0.5, progress=frames), what=video.name)
        (o,) = req.outputs
        out_file.parent.mkdir(parents=True, exist_ok=True)
        client.output(req.id, 0, out_file)
    if as_json:
        print(json.dumps({"id": req.id, "output": str(out_file), **{k: o[k] for k in ("width", "height", "frames", "fps", "has_audio",
                                                                        "flicker")}}, indent=2))
        return
    flicker = req.flicker or {}
    f = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
    out.print(f"{video.name} -> {out_file} ({o['width']}x{o['height']}, {o['frames']} frames at {o['fps']:g} fps); "
              f"flicker {f(flicker.get('input'))} -> {f(flicker.get('output'))} levels", highlight=False)
