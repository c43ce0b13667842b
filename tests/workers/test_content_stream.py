"""Training data streamed from the store (workers/content_stream.py): the same crops in the
same order as the images on a local disk, through cold and warm caches, with several
DataLoader workers, and a resumed stream continues exactly; legacy sets without a manifest
stream from their listing; unreadable images are skipped, a store that is down fails."""

from __future__ import annotations

import io
import logging
import time
from itertools import islice

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from models.data import ContentSet, CropStream
from service.core.content_sets import Manifest, ManifestImage
from service.core.stores import Stores
from service.core.keys import Keys, new_id
from service.core.settings import Settings
from service.core.storage import LocalStore, ObjectNotFound, S3Store, StoreUnavailable
from workers.content_stream import content_set, set_images, stream_spec

SIZES = [(40, 30), (36, 48), (50, 50), (33, 41), (64, 32)]


def photo(i: int) -> Image.Image:
    w, h = SIZES[i]
    return Image.fromarray(np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8))


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def s3(s3_endpoint, tmp_path, monkeypatch):
    # The training child reads the store's credentials from the environment it inherits.
    monkeypatch.setenv("CHECKERLESS_S3_ACCESS_KEY", "test")
    monkeypatch.setenv("CHECKERLESS_S3_SECRET_KEY", "test")
    settings = Settings(_env_file=None, store="s3", s3_endpoint_url=s3_endpoint, s3_bucket=f"stream-{time.time_ns()}",
                        data_dir=tmp_path / "data")
    store = S3Store(bucket=settings.s3_bucket, endpoint_url=s3_endpoint, access_key="test", secret_key="test",
                    create_bucket=True)
    return settings, store


def upload_set(store, *, manifest: bool = True) -> str:
    """A set as the upload writes it (members and a manifest), or as sets were before manifests."""
    set_id = new_id()
    images = []
    for i in range(len(SIZES)):
        data = png_bytes(photo(i))
        key = Keys.content_member(set_id, i, ".png") if manifest else Keys.content_image(set_id, i)
        store.put_bytes(key, data)
        images.append(ManifestImage(name=f"photo-{i}.png", key=key, bytes=len(data), width=SIZES[i][0],
                                    height=SIZES[i][1]))
    if manifest:
        Stores(store).content_sets.put_manifest(set_id, Manifest(images=images))
    return set_id


def batches(content: ContentSet, *, workers: int, start: int = 0, n: int = 6) -> list[torch.Tensor]:
    stream = CropStream(content, size=16, batch=3, seed=7, start=start)
    loader = DataLoader(stream, batch_size=None, num_workers=workers, prefetch_factor=2 if workers else None)
    return list(islice(loader, n))


def streamed(settings, store, set_id, folder) -> ContentSet:
    folder.mkdir(parents=True, exist_ok=True)
    return content_set(stream_spec(store, settings, set_id, folder))


def test_the_stream_from_the_store_gives_the_crops_of_the_same_images_on_disk(s3, tmp_path):
    settings, store = s3
    set_id = upload_set(store)
    local = tmp_path / "local"
    local.mkdir()
    for i in range(len(SIZES)):
        photo(i).save(local / f"photo-{i}.png")  # sorted names: the manifest's order
    expected = batches(ContentSet.from_folder(local), workers=0)

    content = streamed(settings, store, set_id, tmp_path / "job-a")
    assert content.label == f"content-set:{set_id}" and content.streamed
    assert [s.name for s in content.sources] == [f"photo-{i}.png" for i in range(len(SIZES))]
    cache = settings.work_dir / "content-cache"
    cold = batches(content, workers=2)  # each DataLoader worker opens its own S3 client
    assert len(list(cache.glob("??/*"))) == len(SIZES), "every image is in the worker's cache"
    warm = batches(streamed(settings, store, set_id, tmp_path / "job-b"), workers=2)  # the A/B twin
    for a, b, c in zip(expected, cold, warm, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)

    # A resumed attempt (at batch 3) continues exactly where the first one was.
    resumed = batches(streamed(settings, store, set_id, tmp_path / "job-c"), workers=2, start=3, n=3)
    for a, b in zip(expected[3:], resumed, strict=True):
        assert torch.equal(a, b)


def test_a_set_without_a_manifest_streams_its_listed_images_in_key_order(tmp_path):
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")
    store = LocalStore(settings.data_dir / "store")
    legacy, modern = upload_set(store, manifest=False), upload_set(store)
    listed = set_images(store, legacy)
    assert [i["key"] for i in listed] == [Keys.content_image(legacy, i) for i in range(len(SIZES))]
    assert [i["bytes"] for i in listed] == [store.size(Keys.content_image(legacy, i)) for i in range(len(SIZES))]
    a = batches(streamed(settings, store, legacy, tmp_path / "a"), workers=2, n=3)
    b = batches(streamed(settings, store, modern, tmp_path / "b"), workers=0, n=3)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    with pytest.raises(ObjectNotFound):  # a deleted set: the job fails with the reason, untried again
        set_images(store, new_id())


def test_an_image_gone_from_the_store_is_skipped_for_the_next_one(tmp_path, caplog):
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")
    store = LocalStore(settings.data_dir / "store")
    set_id = upload_set(store)
    content = streamed(settings, store, set_id, tmp_path / "job")
    store.delete(Keys.content_member(set_id, 2, ".png"))  # after the set was checked
    stream = CropStream(content, size=16, batch=len(SIZES), seed=1)
    with caplog.at_level(logging.WARNING, logger="models.data"):
        batch = stream.batch_at(0)  # one epoch: every index once, index 2 read as index 3
    assert batch.shape == (len(SIZES), 3, 16, 16)
    assert "photo-2.png became unreadable: photo-2.png: gone from the store" in caplog.text


def test_a_store_that_is_down_fails_the_stream_instead_of_skipping_images(s3, tmp_path):
    import socket

    settings, store = s3
    set_id = upload_set(store)
    folder = tmp_path / "job"
    folder.mkdir()
    spec = stream_spec(store, settings, set_id, folder)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        spec["store"]["s3_endpoint_url"] = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens there
    with pytest.raises(StoreUnavailable):
        batches(content_set(spec), workers=0, n=1)


@pytest.mark.slow  # a real training child starts (torch, the loss network) before it reads a batch
def test_a_store_down_under_the_training_child_requeues_the_job(s3, tmp_path):
    """The child's DataLoader workers cannot reach the store: the attempt ends as one to retry
    (from its last checkpoint, up to the attempt limit), not as a job that failed."""
    import socket

    from service.core.records import JobRecord, JobState
    from workers.train_task import run_train_job

    settings, store = s3
    set_id = upload_set(store)
    style_id = new_id()
    store.put_bytes(Keys.style(style_id), png_bytes(photo(4)))
    stores = Stores(store)
    config = {"decoder": "deconv", "size": 16, "batch": 1, "steps": 4}
    job = stores.jobs.create(JobRecord(id=new_id(), config=config, style_id=style_id, content_set_id=set_id, steps=4))
    with socket.socket() as s:  # the child is told of an endpoint where nothing listens
        s.bind(("127.0.0.1", 0))
        dead = settings.model_copy(update={"s3_endpoint_url": f"http://127.0.0.1:{s.getsockname()[1]}",
                                           "device": "cpu", "export_formats": []})
    sent = []
    assert run_train_job(dead, store, job.id, worker="w", requeue=sent.append) == JobState.queued
    record = stores.jobs.get(job.id)
    assert sent == [job.id] and record.attempts == 1
    assert record.history[-1].reason.startswith(f"the store failed: cannot reach s3 bucket {settings.s3_bucket}"), \
        record.history[-1].reason
