"""What the CLI's API commands share: the client (the checkerless_client library, clients/python,
the project's one HTTP client) made from --api and --key, files to send, a job watched and printed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn



out = Console()
err = Console(stderr=True)

ApiOpt = Annotated[Optional[str], typer.Option("--api", help="API base URL [default: CHECKERLESS_API_URL or http://127.0.0.1:8000].")]
KeyOpt = Annotated[Optional[str], typer.Option("--key", help="API key [default: CHECKERLESS_API_KEY, or the local key in CHECKERLESS_DATA_DIR].")]


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
