"""Idempotency-Key on the POSTs that create something: the same key and the same request get
the first answer again, whatever happened to the connection; the same key with another
request is a 409. Concurrent requests with one key wait for the first one and get its answer.

ASGI middleware: the request body is spooled (to disk past 1 MB) while it is hashed, then
replayed to the app. The record of a key (service/core/keys.py) is created with the store's
create-if-absent, so of many concurrent requests exactly one runs. Answers of 5xx are not
kept: a retry after a server error runs again.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import tempfile
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.core.keys import Keys
from service.core.storage import ObjectNotFound, ObjectStore, StoreError, VersionConflict

HEADER = b"idempotency-key"
MAX_KEY_LENGTH = 255
WAIT_S = 120.0  # how long a request waits for a concurrent one with its key to finish
POLL_S = 0.1


class Idempotency:
    def __init__(self, app: ASGIApp, *, store: ObjectStore, keep_s: float):
        self.app, self.store, self.keep_s = app, store, keep_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        key = dict(scope.get("headers") or []).get(HEADER)
        if key is None:
            return await self.app(scope, receive, send)
        if not key or len(key) > MAX_KEY_LENGTH:
            return await _answer(send, 400, {"detail": f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters"})
        body = tempfile.SpooledTemporaryFile(max_size=1 << 20)
        try:
            digest = hashlib.sha256(scope["method"].encode() + b" " + scope["path"].encode() + b"?"
                                    + scope.get("query_string", b"") + b"\n")
            hashed = _Normalised(digest, _boundary(scope))
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                hashed.update(message.get("body", b""))
                body.write(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            hashed.close()
            # Keys are per caller: the same key from another API key is another request.
            headers = dict(scope.get("headers") or [])
            caller = headers.get(b"x-api-key") or headers.get(b"authorization") or b""
            record_key = Keys.idempotency(hashlib.sha256(caller + b"\n" + key).hexdigest())
            request_hash = digest.hexdigest()
            mine = await asyncio.to_thread(self._claim, record_key, request_hash)
            if mine is not None:  # an earlier request with this key: its answer, or a conflict
                return await self._replay(send, record_key, request_hash, mine)
            body.seek(0)
            await self._run(scope, _replaying(body), send, record_key, request_hash)
        finally:
            body.close()

    def _claim(self, record_key: str, request_hash: str) -> dict | None:
        """None if this request now owns the key; else the key's record as it is."""
        record = {"request": request_hash, "state": "running", "at": time.time()}
        for _ in range(3):
            try:
                self.store.put_if(record_key, json.dumps(record).encode(), version=None, content_type="application/json")
                return None
            except VersionConflict:
                pass
            try:
                data, version = self.store.get_versioned(record_key)
            except ObjectNotFound:
                continue  # released meanwhile: try to claim it again
            existing = json.loads(data)
            age = time.time() - existing["at"]
            # An answer past its keeping time, or a request that never finished (its API process
            # died): the key is free again.
            if age > self.keep_s or (existing["state"] == "running" and age > 2 * WAIT_S):
                try:
                    self.store.put_if(record_key, json.dumps(record).encode(), version=version,
                                      content_type="application/json")
                    return None
                except VersionConflict:
                    continue
            return existing
        raise StoreError("could not claim the Idempotency-Key; try again")

    async def _replay(self, send: Send, record_key: str, request_hash: str, record: dict) -> None:
        if record["request"] != request_hash:
            return await _answer(send, 409, {"detail": "this Idempotency-Key was used with another request; "
                                                       "use a new key for a new request"})
        deadline = time.monotonic() + WAIT_S
        while record["state"] == "running":
            if time.monotonic() > deadline:
                return await _answer(send, 409, {"detail": "a request with this Idempotency-Key is still running"})
            await asyncio.sleep(POLL_S)
            try:
                record = json.loads(await asyncio.to_thread(self.store.get_bytes, record_key))
            except ObjectNotFound:  # the first one failed with a server error: this one may run it
                return await _answer(send, 409, {"detail": "the first request with this Idempotency-Key failed; "
                                                           "send it again"})
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in record["headers"]]
        await send({"type": "http.response.start", "status": record["status"],
                    "headers": headers + [(b"idempotent-replayed", b"true")]})
        await send({"type": "http.response.body", "body": base64.b64decode(record["body"])})

    async def _run(self, scope: Scope, receive: Receive, send: Send, record_key: str, request_hash: str) -> None:
        status, headers, chunks = 500, [], []

        async def capture(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status, headers = message["status"], message.get("headers", [])
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            if status >= 500:
                await asyncio.to_thread(self.store.delete, record_key)
            else:
                record = {"request": request_hash, "state": "done", "at": time.time(), "status": status,
                          "headers": [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers
                                      if k.lower() in (b"content-type", b"content-length", b"location")],
                          "body": base64.b64encode(b"".join(chunks)).decode()}
                await asyncio.to_thread(self.store.put_bytes, record_key, json.dumps(record).encode(),
                                        content_type="application/json")


def _boundary(scope: Scope) -> bytes | None:
    content_type = dict(scope.get("headers") or []).get(b"content-type", b"")
    for param in content_type.split(b";")[1:]:
        name, _, value = param.strip().partition(b"=")
        if name.lower() == b"boundary" and value:
            return b"--" + value.strip(b'"')
    return None


class _Normalised:
    """Feeds a hash with the body, the multipart boundary (random per client call) replaced by
    a constant, so a retried upload of the same files is the same request."""

    def __init__(self, digest, boundary: bytes | None):
        self.digest, self.token, self.carry = digest, boundary, b""

    def update(self, chunk: bytes) -> None:
        if not self.token:
            self.digest.update(chunk)
            return
        data = self.carry + chunk
        # Keep back what could be the start of a boundary that the next chunk completes.
        cut = len(data) - (len(self.token) - 1)
        last = data.rfind(self.token)
        if last != -1:
            cut = max(cut, last + len(self.token))
        cut = max(cut, 0)
        self.digest.update(data[:cut].replace(self.token, b"--boundary"))
        self.carry = data[cut:]

    def close(self) -> None:
        self.digest.update(self.carry.replace(self.token, b"--boundary") if self.token else self.carry)
        self.carry = b""


def _replaying(body) -> Receive:
    async def receive() -> Message:
        chunk = body.read(1 << 16)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunk)}
    return receive


async def _answer(send: Send, status: int, content: dict) -> None:
    data = json.dumps(content).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
