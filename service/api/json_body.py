"""JSON request bodies read under a limit of their own (MAX_JSON_BYTES, far below the general
body limit): a route whose body FastAPI parses as JSON refuses a larger one by Content-Length
before reading it, or as soon as the streamed bytes pass the limit. Routers whose routes take
JSON use `JsonBodyRoute` as their route class (FastAPI's custom APIRoute pattern)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from fastapi.params import Form
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from service.api.schemas import MAX_JSON_BYTES


def _too_large(request: Request) -> HTTPException:
    request.app.state.metrics.refused.labels("body_too_large").inc()
    # An HTTPException: FastAPI passes it through its body parsing unchanged (anything else
    # raised while it reads the body becomes a 400).
    return HTTPException(413, f"request body is larger than the limit of {MAX_JSON_BYTES} bytes for JSON")


class _LimitedBody(Request):
    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            length = self.headers.get("content-length", "")
            if length.isdigit() and int(length) > MAX_JSON_BYTES:
                raise _too_large(self)
            chunks, size = [], 0
            async for chunk in self.stream():
                size += len(chunk)
                if size > MAX_JSON_BYTES:
                    raise _too_large(self)
                chunks.append(chunk)
            self._body = b"".join(chunks)
        return self._body


class JsonBodyRoute(APIRoute):
    """A route whose JSON body is read under MAX_JSON_BYTES; routes without one (no body, a
    form, a raw stream) are left as they are."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()
        if self.body_field is None or isinstance(self.body_field.field_info, Form):
            return handler

        async def limited(request: Request) -> Response:
            return await handler(_LimitedBody(request.scope, request.receive))

        return limited
