"""`checkerless serve`, `checkerless worker` and `checkerless jobs ...` (a client of the HTTP API)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from service.cli.demo_table import service_table

from models.config import DEFAULTS
from models.vocabulary import PRECISIONS

out = Console()
err = Console(stderr=True)
jobs_app = typer.Typer(help="Talk to a checkerless API: submit, watch, cancel, stylise.", no_args_is_help=True)

ApiOpt = Annotated[Optional[str], typer.Option("--api", help="API base URL [default: CHECKERLESS_API_URL or http://127.0.0.1:8000].")]
KeyOpt = Annotated[Optional[str], typer.Option("--key", help="API key [default: CHECKERLESS_API_KEY, or the local key in CHECKERLESS_DATA_DIR].")]


def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated queues: train, stylize, data (content sets to validate).")] = "train,stylize,data",
    concurrency: Annotated[Optional[int], typer.Option(help="Tasks at once: processes, or, for a stylise-only worker, requests its warm stylise servers (one for images, one for videos) are handed together [default: one per GPU when training (CHECKERLESS_GPUS, CUDA_VISIBLE_DEVICES or nvidia-smi -L), else 1].", min=1, max=64)] = None,
    hostname: Annotated[Optional[str], typer.Option(help="Worker name [default: checkerless-QUEUES@host].")] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    pool: Annotated[str, typer.Option(help="Celery pool: auto (threads for a stylise-only worker, else prefork), prefork or threads.")] = "auto",
) -> None:
    """Start a Celery worker against the configured broker and store (CHECKERLESS_* settings)."""
    from service.core.queue import QUEUES
    from service.core.settings import Settings
    from workers.celery_app import make_worker_app

    names = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = [q for q in names if q not in QUEUES]
    if unknown or not names:
        raise typer.BadParameter(f"unknown queue {unknown[0] if unknown else '(none)'}; valid: {', '.join(QUEUES)}",
                                 param_hint="--queues")
    if pool not in ("auto", "prefork", "threads"):
        raise typer.BadParameter(f"unknown pool {pool}; valid: auto, prefork, threads", param_hint="--pool")
    # Each task process owns a warm stylise server (workers/warm_stylize.py). A stylise task only
    # waits on that server, so a stylise-only worker runs its tasks as threads of one process:
    # one server, one copy of each network, and requests that arrive together reach it together.
    # Training keeps a process per task (prefork).
    if pool == "auto":
        pool = "threads" if names == ["stylize"] else "prefork"
    settings = Settings()
    if "train" in names:  # a training job per GPU; each task's child sees only its own (workers/gpus.py)
        from workers.gpus import worker_gpus

        concurrency = concurrency or max(1, len(worker_gpus(settings)))
    app = make_worker_app(settings, names)
    app.conf.checkerless_prestart_stylize = pool == "threads" and "stylize" in names  # workers/tasks.py

    app.worker_main(["worker", "-Q", ",".join(names), "-c", str(concurrency or 1), "-P", pool, "-l", loglevel,
                     "-n", hostname or f"checkerless-{'-'.join(names)}@%h", "--without-gossip", "--without-mingle"])


def _free_port(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder for the store, broker and scratch [default: CHECKERLESS_DATA_DIR or ./checkerless-data].")] = None,
) -> None:
    """Start the API and workers with nothing to install (a broker in a folder, a local store) unless CHECKERLESS_* say otherwise."""
    import uvicorn

    from service.api.main import create_app
    from service.core.settings import Settings

    if data_dir is not None:
        os.environ["CHECKERLESS_DATA_DIR"] = str(data_dir)
    settings = Settings()
    if not _free_port(host, port):
        raise ValueError(f"port {port} on {host} is in use; pick another with --port")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    if settings.store == "local":  # the embedded default: a key the CLI and the demo find by themselves
        app.state.services.keys.ensure_local(settings.local_key_file)
        key_note = f"; API key in {settings.local_key_file.resolve()}"
    else:
        key_note = "; keys: `checkerless keys create`"
    from service.cli.embedded import EmbeddedWorkers

    workers = EmbeddedWorkers({**os.environ, "CHECKERLESS_DATA_DIR": str(settings.data_dir.resolve())})
    app.state.embedded_workers = workers  # their state in /v1/ready
    # uvicorn re-raises SIGTERM/SIGINT after its shutdown; make that an exit that runs `finally`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    url = f"http://{host}:{port}"
    out.print(f"checkerless serving at [bold]{url}[/]  (API docs: {url}/docs; data in {settings.data_dir.resolve()}"
              f"{key_note})")
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        workers.stop()


# --- the client: the checkerless_client library (clients/python), the project's one HTTP client ---


class CliError(ValueError):
    """Bad input found before anything is sent: one line, exit 1 (service/cli/main.py)."""


def _client(api: str | None, key: str | None = None):
    from checkerless_client import Client, RetryPolicy

    from service.core.auth import read_local_key
    from service.core.settings import Settings

    settings = Settings()
    # The key: --key, else CHECKERLESS_API_KEY, else the local key `serve` made in its data folder
    # (read through the service's settings, so a .env here counts as it does for `serve`).
    token = key or settings.api_key or read_local_key(settings.local_key_file)
    # A person is waiting: a refused connection or a 502/503/504 is tried twice more (about a
    # second of backoff), and a quota's 429 is said at once rather than waited out.
    return Client(api or settings.api_url, token,
                  retry=RetryPolicy(attempts=3, statuses=frozenset({502, 503, 504})))


def _files(paths: list[Path]) -> list[tuple[str, bytes]]:
    from models.images import list_images

    found = []
    for p in paths:
        if p.is_dir():
            found += list_images(p)
        elif p.is_file():
            found.append(p)
        else:
            raise CliError(f"{p}: no such file or folder")
    return [(f.name, f.read_bytes()) for f in found]


def _watch(client, job_id: str):
    """A progress bar until the job ends: the final Job."""
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=err) as bar:
        task = None
        for job in client.watch(job_id, poll_s=1):
            info = " ".join(f"{k} {v:.3g}" for k, v in job.losses.items())
            if task is None:
                task = bar.add_task(f"{job.decoder} {job.state}", total=job.steps, info="")
            bar.update(task, completed=job.step, description=f"{job.decoder} {job.state}", info=info)
    return job


def _print_job(job, as_json: bool) -> None:
    if as_json:
        print(json.dumps(job.to_json(), indent=2))
        return
    out.print(f"job {job.id}: {job.state} at step {job.step}/{job.steps} ({job.decoder}), "
              f"attempts {job.attempts}" + (f"; error: {job.error}" if job.error else ""),
              highlight=False)
    for a in job.history if len(job.history) > 1 or job.error else []:
        ended = f"{a.outcome} at step {a.end_step}" if a.outcome else "running"
        out.print(f"  attempt {a.number} on {a.worker}: from step {a.start_step}, {ended}"
                  + (f" ({a.reason})" if a.reason else ""), highlight=False, markup=False)


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


# --- the demo through the service ---------------------------------------------------------


@contextmanager
def embedded_server(*, prefix: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, Path, subprocess.Popen]]:
    """A `checkerless serve` of its own, on a free loopback port, in a temporary data folder,
    with none of this shell's CHECKERLESS_* settings (plus `env`): (its URL, the folder, the
    process). Stopped and the folder removed on the way out (the load test and stylize-bench)."""
    data = Path(tempfile.mkdtemp(prefix=prefix))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHECKERLESS_")} | (env or {})
    server = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--data-dir", str(data)],
                              env=clean, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        yield f"http://127.0.0.1:{port}", data, server
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        shutil.rmtree(data, ignore_errors=True)


def wait_ready(client, server: subprocess.Popen, *, deadline: float) -> bool:
    """Until the embedded server answers /v1/ready (client: a checkerless_client.Client); False
    if it died or the deadline passed."""
    from checkerless_client import CheckerlessError

    while True:
        try:
            if client.ready()["status"] == "ready":
                return True
        except CheckerlessError:  # not listening yet
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.5)


def demo_through_service(*, config, style: str, variants: list[str], photo: str, port: int, data_dir: Path,
                         exit_after: bool, as_json: bool, seeds: int = 1) -> None:
    """Start the embedded server, run the experiment through its API (so the page shows it),
    print the scores, print the page's URL and keep serving until Ctrl-C (or --exit). With
    seeds > 1 each variant trains once per seed and the table gives the probe's final period-2
    score as a mean and 95% interval over them."""
    import io

    from checkerless_client import Client

    from service.core.builtin_styles import BUILTIN_STYLES, PREFIX

    if len(set(variants)) < 2:
        raise ValueError("a comparison needs at least two different decoders")
    if not _free_port("127.0.0.1", port):
        raise ValueError(f"port {port} is in use; pick another with --port")
    upload = None  # a style file (a file wins over a built-in of the same name, as in `train`)
    if Path(style).exists() or style not in BUILTIN_STYLES:
        from models.builtin_images import load_style

        name, image = load_style(style)
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        upload = (f"{Path(name).stem}.png", buf.getvalue())
    from service.core.protocol import die_with_parent

    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKERLESS_")}
    server = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--data-dir", str(data_dir)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                              preexec_fn=lambda: die_with_parent(signal.SIGTERM))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `kill` stops the server too (via finally)
    url = f"http://127.0.0.1:{port}"
    try:
        from service.core.auth import read_local_key
        from service.core.settings import Settings

        key_file = Settings(data_dir=data_dir).local_key_file
        with Client(url) as probe:
            if not wait_ready(probe, server, deadline=time.monotonic() + 120):
                raise CliError(f"the embedded server did not start (see `checkerless serve --port {port}`)")
        # The key the server made on its first start.
        with Client(url, read_local_key(key_file)) as client:
            style_ref = f"{PREFIX}{style}" if upload is None else client.upload_style(upload)
            exp = client.create_experiment(style_ref, variants, seeds=seeds, size=config.size, steps=config.steps,
                                           batch=config.batch, seed=config.seed, style_weight=config.style_weight)
            page = f"{url}/ui/experiment.html?id={exp.id}"
            if not as_json:
                out.print(f"training {' vs '.join(variants)}{f', {seeds} seeds each' if seeds > 1 else ''}; watch it live at\n  [bold]{page}[/]\n"
                          f"(the page asks once for the API key in {key_file.resolve()})", soft_wrap=True)
            exp = _watch_experiment(client, exp.id, quiet=as_json).to_json()
        rows = demo_rows(exp, photo)
        if as_json:
            print(json.dumps({"experiment": exp["id"], "state": exp["state"], "url": page, "variants": rows}, indent=2))
        else:
            out.print(service_table(rows, photo))
            out.print(f"the stylised photos beside the style, at pixel zoom:\n  [bold]{page}[/]", soft_wrap=True)
        if exp["state"] != "succeeded":
            raise CliError(f"the experiment {exp['state']}: " + "; ".join(r["error"] or "" for r in rows))
        if not exit_after:
            out.print("serving; Ctrl-C to stop")
            server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)


def demo_rows(exp: dict, photo: str) -> list[dict]:
    """Per variant of the demo's experiment: its first seed's scores on `photo` (else its first
    panel photo), the probe's period-2 score at the first and last step, time per step, final
    loss; and over every seed, the probe's final period-2 score's mean and 95% interval (the
    API's summary; no interval with one seed)."""
    rows = []
    for v in exp["variants"]:
        p = next((x for x in v["panel"] if x["name"] == photo), v["panel"][0] if v["panel"] else {})
        over_seeds = (v.get("summary") or {}).get("artifact_p2") or {}
        errors = [r["error"] for r in v.get("runs", []) if r.get("error")] or [v["error"]]
        rows.append({"decoder": v["decoder"], "label": v.get("label", v["decoder"]), "state": v["state"],
                     "photo": p.get("name"), "period2_db": p.get("period2_db"), "period4_db": p.get("period4_db"),
                     "init_p2_db": (v["scores"]["init"] or {}).get("artifact_p2"),
                     "final_p2_db": (v["scores"]["final"] or {}).get("artifact_p2"),
                     "seeds": len(v.get("runs") or [None]), "final_p2_mean_db": over_seeds.get("mean"),
                     "final_p2_low_db": over_seeds.get("low"), "final_p2_high_db": over_seeds.get("high"),
                     "seconds_per_step": v["seconds_per_step"], "final_loss": v["losses"].get("loss"),
                     "error": errors[0]})
    return rows


def _watch_experiment(client, experiment_id: str, *, quiet: bool):
    """A bar per variant until no job of the experiment is queued or running: the final Experiment."""
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=err, disable=quiet) as bar:
        tasks = {}

        def show(exp) -> None:
            for v in exp.variants:
                runs = v.runs or [v]  # every seed's job (older servers: the one)
                if v.label not in tasks:
                    tasks[v.label] = bar.add_task(v.label, total=sum(r.steps for r in runs), info="")
                p2 = v.artifacts.get("artifact_p2")
                bar.update(tasks[v.label], completed=sum(r.step for r in runs),
                           info=f"{v.state}" + (f" loss {v.losses['loss']:.3g}" if v.losses else "")
                           + (f" p2 {p2:+.1f} dB" if p2 is not None else ""))

        return client.wait_experiment(experiment_id, poll_s=1, progress=show)
