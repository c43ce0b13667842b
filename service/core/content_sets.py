"""A content set's record (its state while a worker validates it) and its manifest: the
ordered list of its readable images, written once by the worker that validated the set and
read by every training run on it.

The order of `images` is the order the crop stream indexes (models/data.py: sample n is a
seeded permutation of these indices), so a manifest never changes once written: A/B pairs and
resumed runs on the same set see the same images in the same order.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from pydantic import BaseModel, Field

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


SKIPPED_SHOWN = 20  # skipped images a record (and the API's answer) names; the manifest lists them all


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
    skipped: list[dict[str, str]] = Field(default_factory=list)  # name, reason (first ones; all in the manifest)
    created_at: datetime = Field(default_factory=now)
    updated_at: datetime = Field(default_factory=now)
    version: int = 0  # bumped by every write (JobStore.update_content_set), as job records' is

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
    name: str  # the member's path in the archive, or the object's key under a registered prefix
    key: str  # where its bytes are: a key in the service's store, or in `bucket`
    bucket: str | None = None  # None: the service's own store; else a registered S3 bucket, read in place
    bytes: int = Field(ge=0)
    width: int = Field(gt=0)
    height: int = Field(gt=0)


class Skipped(BaseModel):
    name: str
    reason: str


class Manifest(BaseModel):
    images: list[ManifestImage]
    skipped: list[Skipped] = Field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.images)
