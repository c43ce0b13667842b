"""What a request passes before anything reads its body: the caller's key, then the body's
size. Both answer at once (401, 413), so a request with no key or too large a body costs a few
header bytes, whatever the route or the middleware inside (Idempotency hashes a body as it
streams; routes spool or stream it to the store).

Order, outermost first: Authenticate -> BodyLimit -> Idempotency -> the app (service/api/main.py).
"""

from __future__ import annotations

import json

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.core.auth import ApiKey, KeyStore
from service.core.errors import Unauthorized

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
STATE_KEY = "api_key"  # where an authenticated key rides in the request's scope["state"]


def request_token(headers: dict[bytes, bytes]) -> str | None:
    """The key a request carries: X-API-Key, else Authorization: Bearer <key>."""
    api_key = headers.get(b"x-api-key", b"").decode("latin-1").strip()
    if api_key:
        return api_key
    scheme, _, credentials = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    return (credentials.strip() or None) if scheme.lower() == "bearer" else None


def authenticate(keys: KeyStore, token: str | None) -> ApiKey:
    """The live key for `token`, or Unauthorized saying what to send."""
    if not token:
        raise Unauthorized("this request needs an API key: send it in the X-API-Key header "
                           "(or Authorization: Bearer); `checkerless keys create` makes one")
    key = keys.lookup(token)
    if key is None:
        raise Unauthorized("this API key is unknown or revoked")
    return key


def authenticated(scope: Scope) -> ApiKey | None:
    """The key Authenticate found for this request (None on requests without a body)."""
    return (scope.get("state") or {}).get(STATE_KEY)


class Authenticate:
    """Every request that carries a body (POST, PUT, PATCH; every such route needs a key) is
    authenticated from its headers before a byte of the body is read."""

    def __init__(self, app: ASGIApp, *, keys: KeyStore):
        self.app, self.keys = app, keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            return await self.app(scope, receive, send)
        token = request_token(dict(scope.get("headers") or []))
        try:
            key = await anyio.to_thread.run_sync(authenticate, self.keys, token)
        except Unauthorized as e:
            return await answer(send, 401, str(e), [(b"www-authenticate", b"Bearer")])
        scope.setdefault("state", {})[STATE_KEY] = key
        await self.app(scope, receive, send)


class BodyLimit:
    """413 as soon as a request body passes its limit: by Content-Length before reading, or
    by counting while it streams when there is none. Paths ending in one of `limits`'
    suffixes have that limit (a video, an archive streamed to the store), others `max_bytes`."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, limits: dict[str, int] | None = None, on_reject=lambda: None):
        self.app, self.max_bytes, self.limits, self.on_reject = app, max_bytes, limits or {}, on_reject

    def limit(self, path: str) -> int:
        return next((n for suffix, n in self.limits.items() if path.endswith(suffix)), self.max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        max_bytes = self.limit(scope["path"])
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > max_bytes:
            return await self._reject(send, max_bytes)
        seen = 0
        started = over = False

        async def counted() -> Message:
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    over = True
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if over:  # the body parser caught _TooLarge and answers 400 of its own: say 413 instead
                if not started and message["type"] == "http.response.start":
                    started = True
                    await self._reject(send, max_bytes)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send, max_bytes)

    async def _reject(self, send: Send, max_bytes: int) -> None:
        self.on_reject()
        await answer(send, 413, f"request body is larger than the limit of {max_bytes} bytes")


class _TooLarge(Exception):
    pass


async def answer(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    """An error answer from a middleware, shaped like the app's own: {"detail": ...}."""
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})
