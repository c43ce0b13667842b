"""`checkerless content-sets ...`: content sets as resources, through the HTTP API. An archive
is streamed from disk as it is sent (never read whole), and --wait follows its validation."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn
from rich.table import Table

from service.cli.api_client import ApiOpt, CliError, KeyOpt, _client, err, out
from service.core.content_sets import ARCHIVE_KINDS, ARCHIVE_SNIFF_BYTES, archive_kind

app = typer.Typer(help="Content sets: upload an archive, register an S3 prefix, list, show, delete.",
                  no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
WaitOpt = Annotated[bool, typer.Option("--wait", help="Show validation progress until the set is ready or failed "
                                                       "(exit 1 if it failed).")]
POLL_S = 1.0


@app.command("upload")
def upload(archive: Annotated[Path, typer.Argument(help="A tar, tar.gz or zip of images.")],
           name: Annotated[Optional[str], typer.Option(help="A name to know the set by [default: the file's].")] = None,
           wait: WaitOpt = False, as_json: JsonOpt = False, api: ApiOpt = None, key: KeyOpt = None) -> None:
    """Upload an archive of content images, streamed from disk; a worker then checks every image."""
    size = _check_archive(archive)
    started = time.monotonic()
    with _client(api, key) as client, _bar() as bar:
        task = bar.add_task("sending", total=size)
        found = client.upload_archive(archive, name=name or archive.name,
                                      progress=lambda sent, _total: bar.update(task, completed=sent))
    seconds = time.monotonic() - started
    err.print(f"sent {_mb(size)} MB in {seconds:.1f} s ({_mb(size / max(seconds, 1e-3))} MB/s)", highlight=False)
    _after(found, wait=wait, as_json=as_json, api=api, key=key)


@app.command("register")
def register(prefix: Annotated[str, typer.Argument(help="Key prefix of the images, e.g. datasets/coco/train2017/.")],
             bucket: Annotated[Optional[str], typer.Option(help="Bucket [default: the service's].")] = None,
             name: Annotated[Optional[str], typer.Option(help="A name to know the set by [default: s3://bucket/prefix].")] = None,
             wait: WaitOpt = False, as_json: JsonOpt = False, api: ApiOpt = None, key: KeyOpt = None) -> None:
    """Operators (an admin key): images already under an S3 prefix become a content set, read in
    place; nothing is copied, and deleting the set leaves them."""
    with _client(api, key) as client:
        found = client.register_content_set(prefix, bucket=bucket, name=name)
    _after(found, wait=wait, as_json=as_json, api=api, key=key)


@app.command("list")
def list_sets(as_json: JsonOpt = False, api: ApiOpt = None, key: KeyOpt = None) -> None:
    """Your content sets, newest first."""
    with _client(api, key) as client:
        sets = client.content_sets()
    if as_json:
        print(json.dumps([s.to_json() for s in sets], indent=2))
        return
    table = Table("id", "name", "source", "state", "images", "read", "created")
    table.columns[0].no_wrap = True
    for s in sets:
        table.add_row(s.id, s.name or "", s.source, s.state + (f": {s.error}" if s.error else ""),
                      str(s.count), _read_so_far(s), (s.to_json()["created_at"] or "")[:19])
    out.print(table)


@app.command("show")
def show(set_id: str, wait: WaitOpt = False, as_json: JsonOpt = False, api: ApiOpt = None, key: KeyOpt = None) -> None:
    """One content set: its state, validation progress, image count and what was skipped."""
    with _client(api, key) as client:
        found = client.content_set(set_id)
    _after(found, wait=wait, as_json=as_json, api=api, key=key)


@app.command("delete")
def delete(set_id: str, api: ApiOpt = None, key: KeyOpt = None) -> None:
    """Delete a content set (also while it is validating); a registered prefix's objects stay."""
    with _client(api, key) as client:
        client.delete_content_set(set_id)
    out.print(f"deleted content set {set_id}")


def _check_archive(path: Path) -> int:
    """The file's size, once it is known to be a non-empty archive (what the API would refuse, said before sending)."""
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(ARCHIVE_SNIFF_BYTES)
    if not head:
        raise CliError(f"{path}: the file is empty")
    if archive_kind(head) is None:
        raise CliError(f"{path}: not an archive the server reads; send {ARCHIVE_KINDS}")
    return path.stat().st_size


def _bar() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(bar_width=24), DownloadColumn(),
                    TransferSpeedColumn(), TimeElapsedColumn(), console=err, transient=True)  # a line after


def _read_so_far(s) -> str:
    p = s.progress
    total = f"/{_mb(p.total_bytes)}" if p.total_bytes else ""
    return f"{p.members} members, {_mb(p.bytes_read)}{total} MB read"


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f}"


def _after(found, *, wait: bool, as_json: bool, api: str | None, key: str | None) -> None:
    if wait and found.state == "validating":
        with _client(api, key) as client, Progress(
                TextColumn("[bold]validating"), BarColumn(bar_width=24), TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(), console=err) as bar:
            task = bar.add_task("validating", total=found.progress.total_bytes, info=_read_so_far(found))
            found = client.wait_content_set(found.id, poll_s=POLL_S, progress=lambda s: bar.update(
                task, completed=s.progress.bytes_read, info=_read_so_far(s)))
    if as_json:
        print(json.dumps(found.to_json(), indent=2))
    else:
        out.print(f"content set {found.id} ({found.name or found.source}): {found.state}, "
                  f"{found.count} images, {_read_so_far(found)}"
                  + (f"; error: {found.error}" if found.error else ""), highlight=False, markup=False)
        for s in found.skipped[:5]:
            err.print(f"skipped {s['name']}: {s['reason']}", highlight=False, markup=False)
    if wait and found.state == "failed":
        raise typer.Exit(1)
