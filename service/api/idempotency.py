"""Idempotency-Key on the POSTs that create something: the same key and the same request get
the first answer again, whatever happened to the connection; the same key with another
request is a 409. Concurrent requests with one key wait for the first one and get its answer.

ASGI middleware, inside the gate (service/api/gate.py: the caller's key and the body's size
are settled before any body is read). Keys belong to the caller's owner, whichever header
carried the key. Nothing is spooled: the request that claims a key runs at once, its body
hashed as it streams into the app; a later request with the key hashes its own body (read,
not kept) and is compared with the first. The claim is made with the store's create-if-absent,
so of many concurrent requests exactly one runs. Answers of 5xx are not kept (a retry after a
server error runs again), nor refusals that did not read the whole body.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.gate import answer, authenticated
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
            return await answer(send, 400, f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters")
        caller = authenticated(scope)
        owner = caller.owner.encode() if caller else b""
        record_key = Keys.idempotency(hashlib.sha256(owner + b"\n" + key).hexdigest())
        body = _Hashed(scope)
        mine = await asyncio.to_thread(self._claim, record_key)
        if mine is None:
            return await self._run(scope, receive, send, record_key, body)
        # An earlier or concurrent request with this key: this body is only hashed, to compare.
        if not await body.drain(receive):
            return  # the client went away
        await self._replay(send, record_key, body.hexdigest(), mine)

    def _claim(self, record_key: str) -> dict | None:
        """None if this request now owns the key; else the key's record as it is."""
        record = {"state": "running", "at": time.time()}
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
        deadline = time.monotonic() + WAIT_S
        while record["state"] == "running":
            if time.monotonic() > deadline:
                return await answer(send, 409, "a request with this Idempotency-Key is still running")
            await asyncio.sleep(POLL_S)
            try:
                record = json.loads(await asyncio.to_thread(self.store.get_bytes, record_key))
            except ObjectNotFound:  # the first one failed or was refused: this one may run it
                return await answer(send, 409, "the first request with this Idempotency-Key did not finish; "
                                               "send it again")
        if record["request"] != request_hash:
            return await answer(send, 409, "this Idempotency-Key was used with another request; "
                                           "use a new key for a new request")
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in record["headers"]]
        await send({"type": "http.response.start", "status": record["status"],
                    "headers": headers + [(b"idempotent-replayed", b"true")]})
        await send({"type": "http.response.body", "body": base64.b64decode(record["body"])})

    async def _run(self, scope: Scope, receive: Receive, send: Send, record_key: str, body: _Hashed) -> None:
        status, headers, chunks = 500, [], []

        async def capture(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status, headers = message["status"], message.get("headers", [])
                # A success that left body unread (a POST without one): the rest still names the
                # request; read it now, as the server answers disconnect once the response is out.
                if status < 400 and not body.complete:
                    await body.drain(receive)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, body.passing(receive), capture)
        finally:
            if status >= 500 or not body.complete:
                await asyncio.to_thread(self.store.delete, record_key)
            else:
                record = {"request": body.hexdigest(), "state": "done", "at": time.time(), "status": status,
                          "headers": [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers
                                      if k.lower() in (b"content-type", b"content-length", b"location")],
                          "body": base64.b64encode(b"".join(chunks)).decode()}
                await asyncio.to_thread(self.store.put_bytes, record_key, json.dumps(record).encode(),
                                        content_type="application/json")


class _Hashed:
    """A request's identity: method, path, query and body, the body fed in as it is read
    (by the app, or by drain) and never kept."""

    def __init__(self, scope: Scope):
        self.digest = hashlib.sha256(scope["method"].encode() + b" " + scope["path"].encode() + b"?"
                                     + scope.get("query_string", b"") + b"\n")
        self.body = _Normalised(self.digest, _boundary(scope))
        self.complete = False

    def _take(self, message: Message) -> None:
        if message["type"] == "http.request" and not self.complete:
            self.body.update(message.get("body", b""))
            if not message.get("more_body", False):
                self.body.close()
                self.complete = True

    def passing(self, receive: Receive) -> Receive:
        async def hashed() -> Message:
            message = await receive()
            self._take(message)
            return message
        return hashed

    async def drain(self, receive: Receive) -> bool:
        """Read the rest of the body into the hash; False if the client went away first."""
        while not self.complete:
            message = await receive()
            if message["type"] == "http.disconnect":
                return False
            self._take(message)
        return True

    def hexdigest(self) -> str:
        return self.digest.hexdigest()


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
