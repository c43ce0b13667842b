"""Domain errors -> HTTP, in one place. Every error body is {"detail": "<what to fix>"}, of bounded size."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from models.images import ImageError
from service.core.errors import (BadRequest, Conflict, Forbidden, NotFound, QuotaExceeded, TooLarge, Unauthorized, Unavailable,
                                 UnsupportedMedia, clip)
from service.core.storage import StoreUnavailable

# Every answer is bounded, whatever the request: a validation error lists the first
# MAX_PROBLEMS problems and counts the rest, and what it echoes (field names, messages that
# quote a value) is cut. A 12 MB body of unknown keys once made a 108 MB answer.
MAX_PROBLEMS = 10
MAX_FIELD_CHARS = 100
MAX_MESSAGE_CHARS = 300
MAX_DETAIL_CHARS = 2000  # a domain error's message (none of ours is near it; a quoted value may be)

# Domain errors and their HTTP status; the message is the exception's own.
STATUS: dict[type[Exception], int] = {
    BadRequest: 400, Unauthorized: 401, Forbidden: 403, NotFound: 404, UnsupportedMedia: 415, ImageError: 422, ValueError: 422, Conflict: 409, TooLarge: 413, QuotaExceeded: 429, Unavailable: 503,
    StoreUnavailable: 503,
}


def _json(status: int, detail: str, **extra) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail, **extra})


def _field(loc: tuple) -> str:
    return ".".join(str(p) for p in loc if p not in ("body", "query", "path")) or "request"


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        shown = [{"field": clip(_field(e["loc"]), MAX_FIELD_CHARS), "message": clip(e["msg"], MAX_MESSAGE_CHARS)}
                 for e in errors[:MAX_PROBLEMS]]
        more = len(errors) - len(shown)
        detail = "; ".join(f"{p['field']}: {p['message'].removeprefix('Value error, ')}" for p in shown)
        if more:
            detail += f"; and {more} more problem{'s' if more > 1 else ''}"
        return _json(422, detail, errors=shown, more=more)

    for error, status in STATUS.items():
        app.add_exception_handler(error, _handler(status))


REFUSED = {ImageError: "bad_image", TooLarge: "unpacked_too_large"}  # upload refusals, for /metrics


def _handler(status: int):
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        reason = next((r for kind, r in REFUSED.items() if isinstance(exc, kind)), None)
        if reason is not None:
            request.app.state.metrics.refused.labels(reason).inc()
        detail = f"the object store is unavailable: {exc}" if isinstance(exc, StoreUnavailable) else str(exc)
        response = _json(status, clip(detail, MAX_DETAIL_CHARS))
        if status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        if isinstance(exc, QuotaExceeded):
            response.headers["Retry-After"] = str(exc.retry_after_s)
        return response

    return handle
