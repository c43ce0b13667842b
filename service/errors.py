"""Domain errors -> HTTP, in one place. Every error body is {"detail": "<what to fix>"}."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from models.images import ImageError
from service.jobs import NotFound
from service.storage import StoreUnavailable


class Conflict(Exception):
    """The request is valid but not in this state (e.g. stylising with an unfinished job)."""


class Unavailable(Exception):
    """A part we depend on (broker, store) cannot be reached."""


def _json(status: int, detail: str, **extra) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail, **extra})


def _field(loc: tuple) -> str:
    return ".".join(str(p) for p in loc if p not in ("body", "query", "path")) or "request"


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        detail = "; ".join(f"{_field(e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in errors)
        return _json(422, detail, errors=[{"field": _field(e["loc"]), "message": e["msg"]} for e in errors])

    @app.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound) -> JSONResponse:
        return _json(404, str(exc))

    @app.exception_handler(ImageError)
    async def bad_image(_: Request, exc: ImageError) -> JSONResponse:
        return _json(422, str(exc))

    @app.exception_handler(ValueError)
    async def bad_value(_: Request, exc: ValueError) -> JSONResponse:
        return _json(422, str(exc))

    @app.exception_handler(Conflict)
    async def conflict(_: Request, exc: Conflict) -> JSONResponse:
        return _json(409, str(exc))

    @app.exception_handler(Unavailable)
    async def unavailable(_: Request, exc: Unavailable) -> JSONResponse:
        return _json(503, str(exc))

    @app.exception_handler(StoreUnavailable)
    async def store_down(_: Request, exc: StoreUnavailable) -> JSONResponse:
        return _json(503, f"the object store is unavailable: {exc}")
