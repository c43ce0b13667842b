"""API keys and their owners. A key is a random 256-bit token, shown once; the store keeps
only its SHA-256 (a slow hash adds nothing for keys this long), at keys/<sha256>.json, so a
request's key is found in one read. Every record carries its owner's id; a key with the
admin scope sees every owner's."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field

from service.core.errors import NotFound
from service.core.keys import Keys, check_id, new_id
from service.core.records import now
from service.core.storage import ObjectNotFound, ObjectStore

TOKEN_PREFIX = "ck_"


class ApiKey(BaseModel):
    id: str
    owner: str
    name: str
    admin: bool = False
    created_at: datetime = Field(default_factory=now)
    revoked_at: datetime | None = None
    hash: str  # SHA-256 of the token, hex

    @property
    def scope(self) -> str | None:
        """The owner whose resources this key reaches; None: every owner's (admin)."""
        return None if self.admin else self.owner


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class KeyStore:
    def __init__(self, store: ObjectStore):
        self.store = store

    def create(self, *, name: str, owner: str | None = None, admin: bool = False) -> tuple[ApiKey, str]:
        """A new key (for a new owner unless one is named) and its token, which is not kept."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(id=new_id(), owner=check_id(owner, "owner") if owner else new_id(), name=name, admin=admin,
                     hash=token_hash(token))
        self.store.put_if(Keys.api_key(key.hash), key.model_dump_json().encode(), version=None,
                          content_type="application/json")
        return key, token

    def lookup(self, token: str) -> ApiKey | None:
        """The live key with this token, else None."""
        digest = token_hash(token)
        try:
            key = ApiKey.model_validate_json(self.store.get_bytes(Keys.api_key(digest)))
        except ObjectNotFound:
            return None
        if not hmac.compare_digest(key.hash, digest) or key.revoked_at is not None:
            return None
        return key

    def list(self) -> list[ApiKey]:
        keys = []
        for k in self.store.list(Keys.api_key_prefix()):
            try:
                keys.append(ApiKey.model_validate_json(self.store.get_bytes(k)))
            except ObjectNotFound:
                continue
        return sorted(keys, key=lambda k: k.created_at)

    def revoke(self, key_id: str) -> ApiKey:
        for key in self.list():
            if key.id == key_id:
                key.revoked_at = key.revoked_at or now()
                self.store.put_bytes(Keys.api_key(key.hash), key.model_dump_json().encode(),
                                     content_type="application/json")
                return key
        raise NotFound(f"no key {key_id!r}")

    def ensure_local(self, path: Path) -> str:
        """The embedded default: one local key, made on first start and kept in the data folder
        (readable by its user alone), so the CLI and the demo need no key typed."""
        if path.exists():
            token = path.read_text().strip()
            if self.lookup(token) is not None:
                return token
        _key, token = self.create(name="local")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        return token


def read_local_key(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


