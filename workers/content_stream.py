"""Training on a content set read from the store as it trains, never downloaded up front.

The supervisor (`stream_spec`) writes the set's image list into the job's scratch folder: the
manifest's images in its order, or, for a set made before manifests, the images listed under
its prefix, sorted. One list either way. The training child (`content_set`) makes each entry a
`models.data.ImageSource` that reads through the worker's disk cache (workers/content_cache.py),
so the crop stream's order (a seeded permutation of the list's indices) is the same in every
run on the set: resumed attempts and A/B pairs see the same crops.

An image that cannot be read any more (deleted, changed, corrupt) raises ImageError, which the
crop stream skips with a warning; the store failing raises StoreError, which ends the attempt
as one to retry from its last checkpoint (service/core/protocol.py, EXIT_RETRY).

Imported by the supervisor, so torch and the models that need it are imported only inside
`content_set`, which runs in the child.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.images import ImageError, open_image
from service.core.errors import NotFound
from service.core.stores import Stores
from service.core.keys import Keys
from service.core.settings import Settings
from service.core.storage import ObjectNotFound, ObjectStore, open_store
from workers.content_cache import ContentCache

if TYPE_CHECKING:
    from PIL import Image

    from models.data import ContentSet

IMAGES_FILE = "content.json"  # in the job's scratch folder
CACHE_FOLDER = "content-cache"  # under the worker's work_dir, shared by its jobs
# Where the store is, for the child to open its own clients; credentials are not written to
# disk: the child reads them from the environment it inherits, as its worker did.
_STORE_FIELDS = ("store", "data_dir", "s3_bucket", "s3_endpoint_url", "s3_region")


def label(set_id: str) -> str:
    """What a checkpoint trained on a content set says it was trained on."""
    return f"content-set:{set_id}"


def set_images(store: ObjectStore, set_id: str) -> list[dict[str, Any]]:
    """The set's images in training order: {name, key, bucket, bytes} each. ObjectNotFound if
    the set has neither a manifest nor images (deleted)."""
    try:
        manifest = Stores(store).content_sets.get_manifest(set_id)
        return [image.model_dump(include={"name", "key", "bucket", "bytes"}) for image in manifest.images]
    except NotFound:
        pass
    keys = store.list(Keys.content_prefix(set_id))  # sorted: the order is fixed by the keys
    if not keys:
        raise ObjectNotFound(Keys.content_prefix(set_id))
    return [{"name": key.rsplit("/", 1)[1], "key": key, "bucket": None, "bytes": store.size(key)} for key in keys]


def stream_spec(store: ObjectStore, settings: Settings, set_id: str, folder: Path) -> dict[str, Any]:
    """The child's `content` entry for a set: its image list (written into `folder`), the
    cache and where the store is."""
    images = folder / IMAGES_FILE
    images.write_text(json.dumps(set_images(store, set_id)))
    where = settings.model_dump(mode="json", include=set(_STORE_FIELDS))
    where["data_dir"] = str(settings.data_dir.resolve())  # the child runs in the scratch folder
    return {"label": label(set_id), "images": str(images.resolve()),
            "cache": str((settings.work_dir / CACHE_FOLDER).resolve()), "cache_bytes": settings.content_cache_bytes,
            "store": where}


class StoredImages:
    """Loads a listed image through the cache. Each process opens its own store client when it
    first needs one (boto3's clients must not cross a fork: DataLoader workers are forked)."""

    def __init__(self, store: dict[str, Any], cache: ContentCache):
        self.store_fields, self.cache = store, cache
        self._store: ObjectStore | None = None
        self._pid: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_store": None, "_pid": None}

    def store(self, bucket: str | None) -> ObjectStore:
        if self._pid != os.getpid():
            self._store, self._pid = open_store(Settings(**self.store_fields)), os.getpid()
        return self._store.in_bucket(bucket)

    def where(self, bucket: str | None) -> tuple[str, str | None]:
        """The object's store and bucket, named without opening a client: a warm cache needs none."""
        f = self.store_fields
        if f.get("store") == "s3":
            return f"s3 at {f.get('s3_endpoint_url') or 'aws'}", bucket or f.get("s3_bucket")
        return f"local folder {f.get('data_dir')}", bucket

    def read(self, image: dict[str, Any]) -> bytes:
        name, key, bucket, size = image["name"], image["key"], image.get("bucket"), image["bytes"]

        def fetch() -> bytes:
            try:
                data = self.store(bucket).get_bytes(key)
            except ValueError as e:  # a bucket named where the store has none
                raise ImageError(f"{name}: {e}") from None
            except ObjectNotFound:
                raise ImageError(f"{name}: gone from the store ({key})") from None
            if len(data) != size:
                raise ImageError(f"{name}: changed in the store since the set was checked "
                                 f"({len(data)} bytes, not {size})")
            return data

        return self.cache.get(ContentCache.identity(*self.where(bucket), key, size), size, fetch)

    def load(self, image: dict[str, Any]) -> Image.Image:
        data = self.read(image)
        try:
            return open_image(data)
        except ImageError as e:  # open_image names bytes "upload": name the image instead
            raise ImageError(f"{image['name']}: {str(e).removeprefix('upload: ')}") from None


def content_set(spec: dict[str, Any]) -> ContentSet:
    """The child's ContentSet for a `stream_spec` entry."""
    from models.data import ContentSet, ImageSource

    images = json.loads(Path(spec["images"]).read_text())
    reader = StoredImages(spec["store"], ContentCache(Path(spec["cache"]), spec["cache_bytes"]))
    sources = [ImageSource(image["name"], functools.partial(reader.load, image)) for image in images]
    return ContentSet(sources, label=spec["label"], streamed=True)
