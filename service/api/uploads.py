"""Uploads: a body-size limit enforced while the request streams in, and images checked
with Pillow (allow-listed formats, pixel count from the header, then decoded) and stored
re-encoded as PNG, so workers only ever read images we wrote."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models.images import ImageError, open_image


class BodyLimit:
    """ASGI middleware: 413 as soon as a request body passes `max_bytes` (by Content-Length,
    or by counting while it streams when there is none)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await self._reject(send)
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        body = json.dumps({"detail": f"request body is larger than the limit of {self.max_bytes} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


@dataclass(frozen=True)
class CheckedImage:
    name: str
    png: bytes
    width: int
    height: int


def check_image(data: bytes, *, name: str, max_pixels: int) -> CheckedImage:
    """Validate and re-encode one image; raises ImageError naming the file and the problem."""
    if not data:
        raise ImageError(f"{name}: the file is empty")
    try:
        img = open_image(data, max_pixels=max_pixels)
    except ImageError as e:
        raise ImageError(str(e).replace("upload", name, 1)) from None
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return CheckedImage(name, buf.getvalue(), img.width, img.height)


def expand_zip(data: bytes, *, max_total_bytes: int, max_files: int) -> list[tuple[str, bytes]]:
    """The files of a zip, refusing a zip bomb (declared sizes checked before reading)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ImageError("the zip file is damaged or not a zip") from None
    members = [m for m in archive.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")
               and not m.filename.rsplit("/", 1)[-1].startswith(".")]
    if len(members) > max_files:
        raise ImageError(f"the zip holds {len(members)} files; the limit is {max_files}")
    if sum(m.file_size for m in members) > max_total_bytes:
        raise ImageError(f"the zip unpacks to more than {max_total_bytes} bytes")
    out = []
    for m in members:
        try:
            out.append((m.filename, archive.read(m)))
        except (zipfile.BadZipFile, OSError, ValueError):
            out.append((m.filename, b""))  # a damaged member: check_image reports it, the rest go on
    return out
