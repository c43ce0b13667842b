"""Uploads: a body-size limit enforced while the request streams in, and images checked
with Pillow (allow-listed formats, pixel count from the header, then decoded) and stored
re-encoded as PNG, so workers only ever read images we wrote."""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models.images import ImageError, open_image
from service.core.errors import TooLarge


class BodyLimit:
    """ASGI middleware: 413 as soon as a request body passes `max_bytes` (by Content-Length,
    or by counting while it streams when there is none). Bodies to the `streamed` paths pass:
    their routes write them to the store as they come, under a limit of their own. Paths ending
    in one of `larger`'s suffixes have that limit instead (a video upload)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, streamed: frozenset[str] = frozenset(), on_reject=lambda: None,
                 larger: dict[str, int] | None = None):
        self.app, self.max_bytes, self.streamed, self.on_reject = app, max_bytes, streamed, on_reject
        self.larger = larger or {}

    def limit(self, path: str) -> int:
        return next((n for suffix, n in self.larger.items() if path.endswith(suffix)), self.max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.streamed:
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
        body = json.dumps({"detail": f"request body is larger than the limit of {max_bytes} bytes"}).encode()
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
    # zlib level 1: a quarter of the default level's time (100 ms for a 512 px photo on a
    # small CPU, most of a stylise request's time in the API) for ~10% more bytes; lossless either way.
    img.save(buf, format="PNG", compress_level=1)
    return CheckedImage(name, buf.getvalue(), img.width, img.height)


# Only these; bzip2 and LZMA members are refused by name (they let a few hundred bytes claim
# gigabytes, and nobody needs them for images).
ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
_METHOD_NAMES = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "lzma"}
_CHUNK = 1 << 16


class UnpackBudget:
    """What the archives of one request may unpack to: bytes per member, bytes and files in all."""

    def __init__(self, *, total_bytes: int, member_bytes: int, files: int):
        self.left, self.member_bytes, self.total_bytes = total_bytes, member_bytes, total_bytes
        self.files, self.max_files = files, files

    def take_files(self, n: int) -> None:
        self.files -= n
        if self.files < 0:
            raise ImageError(f"the upload holds more than {self.max_files} images; that is the limit")


def is_zip(f: BinaryIO) -> bool:
    head = f.read(4)
    f.seek(0)
    return head == b"PK\x03\x04"


def iter_zip(f: BinaryIO, *, budget: UnpackBudget) -> Iterator[tuple[str, bytes | ImageError]]:
    """The members of a zip, one at a time: (name, bytes), or (name, the reason it is refused).
    Each member is read through a counter, so a header that lies about its size gains nothing;
    going over the request's budget refuses the whole request (TooLarge)."""
    try:
        archive = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, OSError):
        raise ImageError("the zip file is damaged or not a zip") from None
    members = [m for m in archive.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")
               and not m.filename.rsplit("/", 1)[-1].startswith(".")]
    budget.take_files(len(members))
    with archive:
        for m in members:
            if m.compress_type not in ZIP_METHODS:
                method = _METHOD_NAMES.get(m.compress_type, f"method {m.compress_type}")
                yield m.filename, ImageError(f"{m.filename}: compressed with {method}; only stored and deflate "
                                             "members are accepted")
                continue
            yield m.filename, _read_counted(archive, m, budget)


def _read_counted(archive: zipfile.ZipFile, member: zipfile.ZipInfo, budget: UnpackBudget) -> bytes | ImageError:
    limit = min(budget.member_bytes, budget.left)
    out, size = io.BytesIO(), 0
    try:
        with archive.open(member) as src:
            while chunk := src.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    if limit == budget.left:
                        raise TooLarge(f"the archives in this request unpack to more than {budget.total_bytes} bytes")
                    budget.left -= size
                    return ImageError(f"{member.filename}: unpacks to more than {budget.member_bytes} bytes")
                out.write(chunk)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error) as e:
        budget.left -= size
        return ImageError(f"{member.filename}: damaged in the zip ({e})")
    budget.left -= size
    return out.getvalue()
