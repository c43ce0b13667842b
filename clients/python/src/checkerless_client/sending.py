"""What Client and AsyncClient share about one attempt: the headers a Call goes with, and an
error answer read into an ApiError."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from checkerless_client.calls import Call
from checkerless_client.errors import ApiError

CHUNK = 1 << 20  # a streamed body is read and sent this much at a time
# Idle connections are dropped before uvicorn's keep-alive timeout (5 s) can close them under a
# request being sent on them (which would cost a retry).
KEEPALIVE_S = 2.0
DEFAULT_TIMEOUT_S = 120.0
RETRIED_METHODS = frozenset({"GET", "HEAD"})  # safe to repeat without an Idempotency-Key


def new_idempotency_key() -> str:
    return uuid.uuid4().hex


def first_key(call: Call) -> str | None:
    """Every POST goes with an Idempotency-Key, the caller's or one made here, so that sending
    it again after a lost answer gives the first answer instead of a second job."""
    if call.idempotency_key is not None:
        return call.idempotency_key
    return new_idempotency_key() if call.method == "POST" else None


def headers(call: Call, api_key: str | None, idempotency_key: str | None) -> dict[str, str]:
    out = dict(call.headers)
    if api_key:
        out["X-API-Key"] = api_key
    if idempotency_key is not None:
        out["Idempotency-Key"] = idempotency_key
    if call.content is not None:  # a known length: sent as such, not chunked
        out["Content-Length"] = str(call.content.stat().st_size)
    return out


def request_args(call: Call, api_key: str | None, idempotency_key: str | None) -> dict[str, Any]:
    args: dict[str, Any] = {"headers": headers(call, api_key, idempotency_key)}
    if call.params:
        args["params"] = call.params
    if call.json is not None:
        args["json"] = call.json
    if call.data:
        args["data"] = call.data
    return args


def api_error(response: httpx.Response, call: Call, retry_after: float | None) -> ApiError:
    """The API's error answer: {"detail": "..."} (422s add "errors"); anything else (a proxy's
    page) is shown as its text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    if not isinstance(detail, str) or not detail:
        detail = (response.text or "").strip()[:500] or response.reason_phrase or "no detail"
    errors = body.get("errors") if isinstance(body, dict) and isinstance(body.get("errors"), list) else None
    return ApiError(response.status_code, detail, errors=errors, retry_after=retry_after, method=call.method,
                    path=call.path)
