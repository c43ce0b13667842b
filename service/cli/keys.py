"""`checkerless keys create|list|revoke`: the operator's commands for API keys. They talk to
the store the settings name (CHECKERLESS_*), not to the API: run them where the server runs."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

out = Console()
keys_app = typer.Typer(help="API keys: create (shown once), list, revoke. Run where the server's store is.",
                       no_args_is_help=True)


def _keys():
    from service.core.auth import KeyStore
    from service.core.settings import Settings
    from service.core.storage import open_store

    return KeyStore(open_store(Settings()))


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="Who or what the key is for.")],
    owner: Annotated[Optional[str], typer.Option(help="An existing owner's id (another key for them) [default: a new owner].")] = None,
    admin: Annotated[bool, typer.Option(help="See and act on every owner's resources.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create a key; its token is printed once and never stored."""
    from service.core.errors import NotFound

    try:
        key, token = _keys().create(name=name, owner=owner, admin=admin)
    except NotFound as e:
        raise ValueError(f"{e}: an owner is the 32-hex-digit id `keys list` shows") from None
    if as_json:
        print(json.dumps({"id": key.id, "owner": key.owner, "name": key.name, "admin": key.admin, "token": token}))
        return
    out.print(f"key {key.id} for owner {key.owner}{' (admin)' if admin else ''}; the token, shown only now:")
    print(token)


@keys_app.command("list")
def list_keys(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Every key: id, owner, name, scope, created, revoked (never the token)."""
    keys = _keys().list()
    rows = [{"id": k.id, "owner": k.owner, "name": k.name, "admin": k.admin, "created_at": k.created_at.isoformat(),
             "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None} for k in keys]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("id", "owner", "name", "scope", "created", "revoked")
    for r in rows:
        table.add_row(r["id"], r["owner"], r["name"], "admin" if r["admin"] else "owner", r["created_at"][:19],
                      (r["revoked_at"] or "")[:19])
    out.print(table)


@keys_app.command("revoke")
def revoke(key_id: str) -> None:
    """Revoke a key at once: requests with it get 401."""
    from service.core.errors import NotFound

    try:
        key = _keys().revoke(key_id)
    except NotFound as e:
        raise ValueError(str(e)) from None
    out.print(f"revoked key {key.id} ({key.name})")
