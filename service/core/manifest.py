"""A content set's manifest: the ordered list of its readable images, written once by the
worker that validated the set and read by every training run on it.

The order of `images` is the order the crop stream indexes (models/data.py: sample n is a
seeded permutation of these indices), so a manifest never changes once written: A/B pairs and
resumed runs on the same set see the same images in the same order.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


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
