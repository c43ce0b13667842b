"""What handlers need, as Annotated aliases so signatures read like English."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request, Response, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from service.api.gate import authenticate, authenticated, request_token
from service.api.schemas import LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX
from service.core.auth import ApiKey, KeyStore
from service.core.stores import Stores
from service.core.queue import JobQueue
from service.core.settings import Settings
from service.core.storage import ObjectStore


@dataclass
class Services:
    settings: Settings
    store: ObjectStore
    stores: Stores
    queue: JobQueue
    keys: KeyStore


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]

# The key travels in a header, never in a URL or a cookie (so no cross-site request can act).
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key (checkerless keys create).")
_bearer = HTTPBearer(auto_error=False, description="The same key as a bearer token.")


def current_key(request: Request, services: ServicesDep,
                api_key_header: Annotated[str | None, Security(_api_key)] = None,  # noqa: ARG001
                bearer_header: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,  # noqa: ARG001
                ) -> ApiKey:
    """The request's key: found by the gate before the body was read (requests with a body),
    else looked up here. The two Security parameters declare the schemes in the OpenAPI schema."""
    return authenticated(request.scope) or authenticate(services.keys, request_token(dict(request.scope["headers"])))


CurrentKey = Annotated[ApiKey, Depends(current_key)]


@dataclass
class Page:
    """Which page of a list a request asks for."""

    limit: int
    cursor: str | None


def page(limit: Annotated[int, Query(ge=1, le=LIST_LIMIT_MAX, description="Items on this page.")] = LIST_LIMIT_DEFAULT,
         cursor: Annotated[str | None, Query(description="Where this page starts: the X-Next-Cursor of the page "
                                                         "before (opaque); none for the first page.")] = None) -> Page:
    return Page(limit=limit, cursor=cursor)


PageDep = Annotated[Page, Depends(page)]
# A paged list's response headers, for the OpenAPI schema (`responses=` of its route).
PAGED = {200: {"headers": {
    "X-Next-Cursor": {"description": "The next page's cursor; absent on the last page.", "schema": {"type": "string"}},
    "Link": {"description": 'The next page\'s address: <url>; rel="next"; absent on the last page.',
             "schema": {"type": "string"}}}}}


def link_next(request: Request, response: Response, cursor: str | None) -> None:
    """The next page's cursor in X-Next-Cursor, and its address in Link (rel="next"); neither
    on the last page. The body stays a JSON list."""
    if cursor is None:
        return
    url = request.url.include_query_params(cursor=cursor)
    response.headers["X-Next-Cursor"] = cursor
    response.headers["Link"] = f'<{url.path}?{url.query}>; rel="next"'
