"""Uploads: images checked with Pillow (allow-listed formats, pixel count from the header,
then decoded) and stored re-encoded as PNG, so workers only ever read images we wrote; zips
unpacked under a budget. The body's size limit is checked before this (service/api/gate.py)."""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from models.images import ImageError, rgb_png
from service.core.content_sets import ZipDirectoryTooLarge, open_zip, shown
from service.core.errors import TooLarge


@dataclass(frozen=True)
class CheckedImage:
    name: str
    png: bytes
    width: int
    height: int


def check_image(data: bytes, *, name: str, max_pixels: int) -> CheckedImage:
    """Validate and re-encode one image; raises ImageError naming the file and the problem. The
    name is cut as stored names are (content_sets.shown): a form's file name is the client's."""
    name = shown(name)
    if not data:
        raise ImageError(f"{name}: the file is empty")
    try:
        # Converted to RGB as it is written: the API holds the decoded image and no second copy.
        # zlib level 1: a quarter of the default level's time (100 ms for a 512 px photo on a
        # small CPU, most of a stylise request's time in the API) for ~10% more bytes; lossless either way.
        png = rgb_png(data, max_pixels=max_pixels, compress_level=1)
    except ImageError as e:
        raise ImageError(str(e).replace("upload", name, 1)) from None
    return CheckedImage(name, png.data, png.width, png.height)


# Only these; bzip2 and LZMA members are refused by name (they let a few hundred bytes claim
# gigabytes, and nobody needs them for images).
ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
_METHOD_NAMES = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "lzma"}
_CHUNK = 1 << 16
# A zip's directory may take this much per image the request may hold (max_content_images):
# room for a folder entry, a __MACOSX twin and a long path each. zipfile reads the directory
# whole and keeps an object per entry (~350 bytes each beyond its name), so a 50 MB upload of
# empty entries would otherwise hold ~650,000 of them.
ZIP_DIRECTORY_PER_IMAGE = 4096


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
    going over the request's budget refuses the whole request (TooLarge). Names are yielded as
    stored names are (content_sets.shown)."""
    try:
        archive, _ = open_zip(f, budget.max_files * ZIP_DIRECTORY_PER_IMAGE)
    except ZipDirectoryTooLarge as e:
        raise ImageError(f"{e} ({ZIP_DIRECTORY_PER_IMAGE} bytes for each of the {budget.max_files} images an "
                         "upload may hold); refused unread") from None
    except (zipfile.BadZipFile, OSError):
        raise ImageError("the zip file is damaged or not a zip") from None
    members = [m for m in archive.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")
               and not m.filename.rsplit("/", 1)[-1].startswith(".")]
    budget.take_files(len(members))
    with archive:
        for m in members:
            name = shown(m.filename)
            if m.compress_type not in ZIP_METHODS:
                method = _METHOD_NAMES.get(m.compress_type, f"method {m.compress_type}")
                yield name, ImageError(f"{name}: compressed with {method}; only stored and deflate members are "
                                       "accepted")
                continue
            yield name, _read_counted(archive, m, name, budget)


def _read_counted(archive: zipfile.ZipFile, member: zipfile.ZipInfo, name: str,
                  budget: UnpackBudget) -> bytes | ImageError:
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
                    return ImageError(f"{name}: unpacks to more than {budget.member_bytes} bytes")
                out.write(chunk)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error) as e:
        budget.left -= size
        return ImageError(f"{name}: damaged in the zip ({e})")
    budget.left -= size
    return out.getvalue()
