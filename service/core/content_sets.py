"""A content set's record (its state while a worker validates it) and its manifest: the
ordered list of its readable images, written once by the worker that validated the set and
read by every training run on it.

The order of `images` is the order the crop stream indexes (models/data.py: sample n is a
seeded permutation of these indices), so a manifest never changes once written: A/B pairs and
resumed runs on the same set see the same images in the same order.
"""

from __future__ import annotations

import io
import zipfile
from datetime import datetime
from enum import Enum
from typing import Annotated, BinaryIO

from pydantic import AfterValidator, BaseModel, Field, field_validator, model_validator

from service.core.records import now


# What an uploaded archive may be, told by its first bytes (the name it had is not trusted).
ARCHIVE_KINDS = "a tar, a tar.gz (gzip) or a zip"
ARCHIVE_SNIFF_BYTES = 262  # a tar's 'ustar' magic ends at offset 262


def archive_kind(head: bytes) -> str | None:
    """'zip', 'gzip' or 'tar' from an archive's first ARCHIVE_SNIFF_BYTES bytes (fewer if it is
    shorter), else None. A gzip is taken to hold a tar: the validating worker finds out."""
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):  # a zip's first member, or an empty zip's end record
        return "zip"
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[257:262] == b"ustar":
        return "tar"
    return None


class ZipDirectoryTooLarge(Exception):
    """A zip refused before its directory is read (open_zip)."""

    def __init__(self, size: int, limit: int):
        super().__init__(f"the zip's directory (its list of members: their names, extra fields and comments) is "
                         f"{size} bytes, over the limit of {limit}")
        self.size, self.limit = size, limit


def open_zip(f: BinaryIO, max_directory_bytes: int) -> tuple[zipfile.ZipFile, int]:
    """A zip opened by Python's zipfile, and the bytes it read to open it. zipfile reads the end
    record and the central directory in one read each, and keeps an object per member with its
    name, extra field and comment (up to 64 KiB each): a read of more than `max_directory_bytes`
    is refused before it happens (ZipDirectoryTooLarge). zipfile's errors as they are."""
    reads = _OpeningReads(f, max_directory_bytes)
    archive = zipfile.ZipFile(reads)
    reads.limit = None  # open: members are read by whoever unpacks them, under limits of their own
    return archive, reads.count


class _OpeningReads:
    def __init__(self, f: BinaryIO, limit: int):
        self.f, self.limit, self.count = f, limit, 0

    def read(self, size: int | None = -1) -> bytes:
        if self.limit is not None:
            if size is None or size < 0:  # to the end: the end record's own read
                here = self.f.tell()
                size = max(0, self.f.seek(0, io.SEEK_END) - here)
                self.f.seek(here)
            if size > self.limit:
                raise ZipDirectoryTooLarge(size, self.limit)
        data = self.f.read(size)
        if self.limit is not None:
            self.count += len(data)
        return data

    def __getattr__(self, name: str):
        return getattr(self.f, name)


class ContentSetState(str, Enum):
    validating = "validating"  # stored (or registered); a worker is reading every image
    ready = "ready"  # the manifest is written: jobs may train on it
    failed = "failed"  # `error` says why; nothing of it is kept but this record


class ContentSource(str, Enum):
    images = "images"  # image files or a small zip, checked by the API as they arrived
    archive = "archive"  # a tar, tar.gz or zip streamed to the store, unpacked by the worker
    prefix = "prefix"  # objects an operator already has under an S3 prefix, read in place


class Progress(BaseModel):
    members: int = 0  # archive members or prefix objects looked at so far
    bytes_read: int = 0  # of the archive (or of the objects under the prefix)
    total_bytes: int | None = None  # the archive's size, when known


SKIPPED_SHOWN = 20  # skipped images a record (and the API's answer) names
SKIPPED_KEPT = 1000  # skipped members a manifest lists; it counts them all (`skipped_count`)
# A member's name as records and manifests keep it. An archive may name a member with up to
# 64 KiB (workers/validate.py reads no more); 255 characters (a file name's limit on most file
# systems) say which member it was, and keep a skipped entry, a record and a manifest small
# whatever the archive holds.
NAME_SHOWN = 255
REASON_SHOWN = 500  # why a member was skipped: a sentence, perhaps quoting a library's error


def shown(text: str, limit: int = NAME_SHOWN) -> str:
    """`text` as stored and shown: at most `limit` characters, the last of them '…' where it was cut."""
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


ShownName = Annotated[str, AfterValidator(shown)]
ShownReason = Annotated[str, AfterValidator(lambda text: shown(text, REASON_SHOWN))]


class ContentSetRecord(BaseModel):
    """Stored at Keys.content_meta(id). Sets made before states existed have none of the new
    fields: they read as ready `images` sets (their images are listed under the prefix)."""

    id: str
    owner: str = ""
    name: str | None = None
    source: ContentSource = ContentSource.images
    bucket: str | None = None  # prefix sets: the bucket read in place (None: the service's own)
    prefix: str | None = None  # prefix sets: the key prefix registered
    state: ContentSetState = ContentSetState.ready
    error: str | None = None
    progress: Progress = Field(default_factory=Progress)
    attempts: int = 0  # validations started (workers/validate.py): one cut off by a dead worker is tried again
    count: int = 0  # readable images (the manifest's length once ready)
    skipped: list[dict[str, str]] = Field(default_factory=list)  # name, reason: the first SKIPPED_SHOWN
    created_at: datetime = Field(default_factory=now)
    updated_at: datetime = Field(default_factory=now)
    version: int = 0  # bumped by every write (ContentSets.update), as job records' is

    @field_validator("skipped")
    @classmethod
    def _bounded(cls, skipped: list[dict[str, str]]) -> list[dict[str, str]]:
        # Every listing of an owner's sets reads every record: each one stays small.
        return [{"name": shown(s.get("name", "")), "reason": shown(s.get("reason", ""), REASON_SHOWN)}
                for s in skipped[:SKIPPED_SHOWN]]

    @property
    def final(self) -> bool:
        return self.state != ContentSetState.validating

    def describe_not_ready(self) -> str:
        """Why a job cannot train on this set yet (or ever), for a 409."""
        if self.state == ContentSetState.failed:
            return f"content set {self.id} failed: {self.error or 'no reason recorded'}"
        total = f" of {self.progress.total_bytes} bytes" if self.progress.total_bytes else ""
        return (f"content set {self.id} is validating ({self.progress.members} members read, "
                f"{self.progress.bytes_read}{total} bytes); try again once it is ready")


class ManifestImage(BaseModel):
    name: ShownName  # the member's path in the archive, or the object's key under a registered prefix
    key: str  # where its bytes are: a key in the service's store, or in `bucket`
    bucket: str | None = None  # None: the service's own store; else a registered S3 bucket, read in place
    bytes: int = Field(ge=0)
    width: int = Field(gt=0)
    height: int = Field(gt=0)


class Skipped(BaseModel):
    name: ShownName
    reason: ShownReason


class Manifest(BaseModel):
    images: list[ManifestImage]
    skipped: list[Skipped] = Field(default_factory=list)  # the first SKIPPED_KEPT
    skipped_count: int = Field(0, ge=0)  # all of them

    @model_validator(mode="after")
    def _bounded(self) -> Manifest:
        self.skipped_count = max(self.skipped_count, len(self.skipped))  # a manifest older than the count
        del self.skipped[SKIPPED_KEPT:]
        return self

    @property
    def count(self) -> int:
        return len(self.images)
