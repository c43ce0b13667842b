"""Content sets as resources: archives streamed to the store, S3 prefixes registered in place
(both validated by a worker on the data queue), and reading and deleting them. The small
upload of image files checked by the API itself is in service/api/routes/uploads.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anyio
import anyio.from_thread
from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from service.api.deps import CurrentKey, ServicesDep
from service.api.json_body import JsonBodyRoute
from service.api.schemas import ContentSetPublic, RegisterPrefix
from service.core.content_sets import (ARCHIVE_KINDS, ARCHIVE_SNIFF_BYTES, ContentSetRecord, ContentSetState,
                                       ContentSource, Progress, archive_kind)
from service.core import usage
from service.core.errors import BadRequest, UnsupportedMedia
from service.core.keys import Keys, new_id
from service.core.submit import check_storage, register_prefix, validate_content_set

router = APIRouter(tags=["content sets"], route_class=JsonBodyRoute)  # JSON bodies under MAX_JSON_BYTES

_ARCHIVE_BODY = {"requestBody": {"required": True, "description": f"The archive's bytes: {ARCHIVE_KINDS}.",
                                 "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                     "format": "binary"}}}}}


@router.post("/content-sets/archive", status_code=202, response_model=ContentSetPublic, openapi_extra=_ARCHIVE_BODY)
async def upload_archive(request: Request, services: ServicesDep, key: CurrentKey,
                         name: str | None = Query(None, max_length=200)) -> ContentSetPublic:
    """A content set as one archive (tar, tar.gz or zip) in the raw request body
    (`curl -T set.tar`), written to the store as it arrives; a worker then unpacks and checks
    every image. Answers at once with the set, validating: poll GET /v1/content-sets/{id}."""
    # Its size limit (max_archive_bytes) is counted by the gate as the body arrives (service/api/gate.py):
    # past it the store takes the partial upload back.
    await run_in_threadpool(check_storage, services.stores, key, services.settings)
    body = request.stream()
    try:
        head = await _head(body)
        if not head:
            raise BadRequest("the request body is empty: send the archive's bytes as the body (curl -T set.tar)")
        if archive_kind(head) is None:
            raise UnsupportedMedia(f"the body is not an archive this server reads: send {ARCHIVE_KINDS}")
        set_id = new_id()
        size = await anyio.to_thread.run_sync(services.store.put_stream, Keys.content_archive(set_id),
                                              _from_loop(head, body))
    except ClientDisconnect:  # nothing was kept (put_stream took it back); nobody hears the answer
        raise BadRequest("the upload was cut off before its end") from None
    record = await run_in_threadpool(validate_content_set, services.stores, services.queue, ContentSetRecord(
        id=set_id, owner=key.owner, name=name, source=ContentSource.archive, state=ContentSetState.validating,
        progress=Progress(total_bytes=size)))
    await run_in_threadpool(usage.count_prefix, services.store, key.owner, Keys.content_set_prefix(set_id))
    return ContentSetPublic.of(record)


# `curl -T set.tar URL` sends a PUT: taken as the same upload (not in the schema: one way to list).
router.add_api_route("/content-sets/archive", upload_archive, methods=["PUT"], status_code=202,
                     response_model=ContentSetPublic, include_in_schema=False)


async def _head(body: AsyncIterator[bytes]) -> bytes:
    """The body's first bytes, enough to tell its kind (fewer only if the body is shorter)."""
    head = b""
    async for chunk in body:
        head += chunk
        if len(head) >= ARCHIVE_SNIFF_BYTES:
            break
    return head


def _from_loop(head: bytes, body: AsyncIterator[bytes]) -> Iterator[bytes]:
    """The body as a plain iterator for a worker thread: each chunk awaited on the event loop
    as the store asks for it, so no more than the store's part is ever held."""
    async def next_chunk() -> bytes | None:
        try:
            return await body.__anext__()
        except StopAsyncIteration:
            return None

    yield head
    while (chunk := anyio.from_thread.run(next_chunk)) is not None:
        yield chunk



@router.post("/content-sets/register", status_code=202, response_model=ContentSetPublic)
def register(body: RegisterPrefix, services: ServicesDep, key: CurrentKey) -> ContentSetPublic:
    """Operators (an admin key): images already under an S3 prefix become a content set, read in
    place (nothing is copied; deleting the set never deletes them). The bucket and prefix are
    checked at once; a worker then reads and checks every image."""
    return ContentSetPublic.of(register_prefix(services.stores, services.queue, key, prefix=body.prefix,
                                               bucket=body.bucket, name=body.name))


@router.get("/content-sets", response_model=list[ContentSetPublic])
def list_content_sets(services: ServicesDep, key: CurrentKey) -> list[ContentSetPublic]:
    """Your content sets, newest first: state, validation progress, image count, what was skipped."""
    return [ContentSetPublic.of(r) for r in services.stores.content_sets.list(key.scope)]


@router.get("/content-sets/{set_id}", response_model=ContentSetPublic)
def get_content_set(set_id: str, services: ServicesDep, key: CurrentKey) -> ContentSetPublic:
    """One content set; poll it while it is validating."""
    return ContentSetPublic.of(services.stores.content_sets.get(set_id, key.scope))


@router.delete("/content-sets/{set_id}", status_code=204)
def delete_content_set(set_id: str, services: ServicesDep, key: CurrentKey) -> Response:
    """Delete a content set, also while it is validating; refused (409) while an unfinished job
    uses it. A registered prefix's objects are the operator's and stay."""
    services.stores.content_sets.delete(set_id, key.scope)
    return Response(status_code=204)
