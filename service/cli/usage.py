"""`checkerless usage show|repair`: the operator's view of each owner's quota usage record
(service/core/usage.py). Like `keys`, they talk to the store the settings name
(CHECKERLESS_*), not to the API: run them where the server runs."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Column, Table

out = Console()
usage_app = typer.Typer(help="Owners' quota usage: show it, or repair it from the job records after a crash. "
                             "Run where the server's store is.", no_args_is_help=True)


def _open():
    from service.core.auth import KeyStore
    from service.core.stores import Stores
    from service.core.settings import Settings
    from service.core.storage import open_store

    settings = Settings()
    store = open_store(settings)
    return settings, Stores(store), KeyStore(store)


def _owners(keys, owner: str | None) -> list[str]:
    owners = sorted({k.owner for k in keys.list() if not k.admin})
    if owner is None:
        return owners
    if owner not in owners:
        raise ValueError(f"no owner {owner!r} with a key; `checkerless keys list` shows the owners")
    return [owner]


def _print(rows: list[dict], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    # The owner whole: it is what `usage repair` takes.
    table = Table(Column("owner", no_wrap=True), "unfinished jobs", "training pixel-steps in the window",
                  "stored bytes", "measured at")
    for r in rows:
        table.add_row(r["owner"], str(len(r["active"])), f"{r['window_pixels']:.3g}",
                      "not measured" if r["stored_bytes"] is None else str(r["stored_bytes"]), r["measured_at"] or "")
    out.print(table)


def _row(record) -> dict:
    return {"owner": record.owner, "active": sorted(record.active), "window_pixels": sum(record.minutes.values()),
            "stored_bytes": record.stored, "measured_at": record.measured_at and record.measured_at.isoformat()}


@usage_app.command("show")
def show(
    owner: Annotated[Optional[str], typer.Argument(help="An owner's id [default: every owner].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What each owner's usage record says (and, where it has none yet, what its jobs say)."""
    from service.core import usage
    from service.core.errors import NotFound

    settings, stores, keys = _open()
    rows = []
    for o in _owners(keys, owner):
        try:
            record = usage.read(stores.store, o)
        except NotFound:
            record = usage.recompute(stores, o, settings.quota_window_s)
        rows.append(_row(record))
    _print(rows, as_json)


@usage_app.command("repair")
def repair(
    owner: Annotated[Optional[str], typer.Argument(help="An owner's id [default: every owner].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Rebuild each owner's usage record from its job records (every record read) and measure
    their storage (every object listed): after a crash left it counting jobs that ended, or
    missing ones made around the API."""
    from service.core import usage

    settings, stores, keys = _open()
    rows = []
    for o in _owners(keys, owner):
        usage.repair(stores, o, settings.quota_window_s)
        usage.measure_storage(stores, o)
        rows.append(_row(usage.read(stores.store, o)))
    _print(rows, as_json)
