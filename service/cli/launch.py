"""`checkerless serve` (the API with embedded workers) and `checkerless worker` (a Celery worker);
`embedded_server`: a serve of its own for the commands that need a whole service for a while
(the demo through the service, the load test, the stylise benchmark)."""

from __future__ import annotations

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



out = Console()
err = Console(stderr=True)


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


# Seconds an idle HTTP connection stays open. uvicorn's default, 5 s, closed connections a busy
# client was reusing: a client under load reads a response late, so its own idle clock (the
# client library drops connections idle 2 s) starts after the server's, and the load test's
# requests got ReadError (2 runs in 2; none at 30 s). Above a load balancer's usual 60 s idle
# timeout, as a server behind one must be. The Dockerfile's UVICORN_TIMEOUT_KEEP_ALIVE is this.
KEEP_ALIVE_S = 75


def _free_port(host: str, port: int) -> bool:
    with socket.socket() as s:
        # As uvicorn binds: a port whose last server's connections linger in TIME_WAIT is free
        # (without it, `serve` again on the port just stopped said "in use" for a minute).
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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
        uvicorn.run(app, host=host, port=port, log_level="warning", timeout_keep_alive=KEEP_ALIVE_S)
    finally:
        workers.stop()


# What a service of its own (the demo's, the load test's, stylize-bench's) keeps of this shell's
# CHECKERLESS_* settings: only those that size each job's extra work, never those that say
# where a service's data, broker or limits are (it is the embedded default).
WORK_SIZE_SETTINGS = ("CHECKERLESS_PROBE_SIZE", "CHECKERLESS_PREVIEW_SIZE", "CHECKERLESS_EXPORT_FORMATS")


def own_service_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a `checkerless serve` of its own: this one without its CHECKERLESS_*
    settings but WORK_SIZE_SETTINGS, plus `env`."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("CHECKERLESS_") or k in WORK_SIZE_SETTINGS} | (env or {})


@contextmanager
def embedded_server(*, prefix: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, Path, subprocess.Popen]]:
    """A `checkerless serve` of its own (own_service_env), on a free loopback port, in a
    temporary data folder: (its URL, the folder, the process). Stopped and the folder removed on
    the way out (the load test and stylize-bench)."""
    data = Path(tempfile.mkdtemp(prefix=prefix))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from service.core.protocol import die_with_parent

    # It goes with its caller however that ends (a SIGTERM or SIGKILL skips the clean-up below).
    server = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--data-dir", str(data)],
                              env=own_service_env(env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True, preexec_fn=lambda: die_with_parent(signal.SIGTERM))
    try:
        yield f"http://127.0.0.1:{port}", data, server
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)
        except ProcessLookupError:  # it died by itself (what the caller's error says)
            pass
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
