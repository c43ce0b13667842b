"""The worker's disk cache of content images (workers/content_cache.py) and the store-backed
image loader on it (workers/content_stream.py), against the local store and moto's S3."""

from __future__ import annotations

import io
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.images import ImageError
from service.core.storage import LocalStore, S3Store, StoreUnavailable
from workers.content_cache import ContentCache
from workers.content_stream import StoredImages


def blob(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def png(seed: int, size=(24, 20)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size[::-1], 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_a_miss_fetches_once_and_later_reads_hit_the_disk(tmp_path):
    cache, calls = ContentCache(tmp_path, 10_000), []
    data = blob(100, 1)

    def fetch() -> bytes:
        calls.append(1)
        return data

    ident = ContentCache.identity("store", None, "a/b.png", 100)
    assert cache.get(ident, 100, fetch) == data
    assert cache.get(ident, 100, fetch) == data
    assert ContentCache(tmp_path, 10_000).get(ident, 100, fetch) == data  # another process's object, same folder
    assert (len(calls), cache.hits, cache.misses) == (1, 1, 1)
    # The object's size is part of its identity: a replaced object of another size is another file.
    assert ContentCache.identity("store", None, "a/b.png", 101) != ident
    assert ContentCache.identity("store", "other-bucket", "a/b.png", 100) != ident


def test_a_file_of_the_wrong_size_is_fetched_again(tmp_path):
    cache = ContentCache(tmp_path, 10_000)
    ident = ContentCache.identity("s", None, "k", 100)
    cache.path(ident).parent.mkdir(parents=True)
    cache.path(ident).write_bytes(b"cut short")  # as a crash mid-write would leave it
    assert cache.get(ident, 100, lambda: blob(100, 2)) == blob(100, 2)
    assert cache.misses == 1 and cache.path(ident).read_bytes() == blob(100, 2)


def test_least_recently_used_go_first_once_past_the_budget(tmp_path):
    cache = ContentCache(tmp_path, 1000)
    ids = [ContentCache.identity("s", None, f"k{i}", 300) for i in range(5)]
    past = time.time_ns() - 3600 * 10**9
    for i in range(3):
        cache.get(ids[i], 300, lambda i=i: blob(300, i))
        os.utime(cache.path(ids[i]), ns=(past + i, past + i))  # used in this order, an hour ago
    cache.get(ids[0], 300, lambda: pytest.fail("k0 is cached"))  # a hit touches k0: now the most recently used
    cache.get(ids[3], 300, lambda: blob(300, 3))  # 1200 bytes > 1000: evict to 900
    kept = [p.exists() for p in map(cache.path, ids[:4])]
    assert kept == [True, False, True, True], "k1, the least recently used, goes; k0 was just read"
    assert cache.held_bytes() <= 1000
    assert int((tmp_path / "bytes").read_text()) == cache.held_bytes()


def _share(folder: str, seed: int, rounds: int, out) -> None:
    cache = ContentCache(Path(folder), 6000)
    bad = 0
    for r in range(rounds):
        # Every other read is one of four hot keys (hits whatever the other process does: a
        # cycle over 40 keys alone never hits an LRU of 12, so hits had hung on the two
        # processes' timing); the rest cycle through 40 keys, past the budget.
        i = r // 2 % 4 if r % 2 == 0 else (seed * 7 + r) % 40
        ident = ContentCache.identity("s", None, f"k{i}", 500)
        if cache.get(ident, 500, lambda i=i: blob(500, i)) != blob(500, i):
            bad += 1
    out.put((bad, cache.hits, cache.misses))


def test_two_processes_share_one_cache_and_keep_it_within_budget(tmp_path):
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_share, args=(str(tmp_path), seed, 300, out)) for seed in (1, 2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert all(bad == 0 for bad, _, _ in results), results
    assert all(hits > 0 and misses > 0 for _, hits, misses in results), results
    assert ContentCache(tmp_path, 6000).held_bytes() <= 6000
    assert not list(tmp_path.glob("**/.part-*")), "no half-written file is left"


def _rewrite(folder: str, ident: str, until: float) -> None:
    cache, data = ContentCache(Path(folder), 1 << 30), blob(1 << 20, 5)
    while time.time() < until:
        cache.path(ident).unlink(missing_ok=True)
        cache.get(ident, len(data), lambda: data)


def test_a_reader_never_sees_a_half_written_file(tmp_path):
    ident = ContentCache.identity("s", None, "big", 1 << 20)
    path = ContentCache(tmp_path, 1 << 30).path(ident)
    until = time.time() + 1.5
    writer = multiprocessing.get_context("fork").Process(target=_rewrite, args=(str(tmp_path), ident, until))
    writer.start()
    seen = set()
    while writer.is_alive():
        try:
            seen.add(len(path.read_bytes()))
        except FileNotFoundError:
            pass
    writer.join()
    assert seen == {1 << 20}


def _stored(store, tmp_path, budget=1 << 20) -> StoredImages:
    fields = {"store": "local", "data_dir": str(tmp_path / "data")}
    if isinstance(store, S3Store):
        fields = {"store": "s3", "data_dir": str(tmp_path / "data"), "s3_bucket": store.bucket,
                  "s3_endpoint_url": store.endpoint_url}
    return StoredImages(fields, ContentCache(tmp_path / "cache", budget))


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path, monkeypatch):
    if request.param == "local":
        return LocalStore(tmp_path / "data" / "store")
    # The training child reads the credentials from the environment it inherits.
    monkeypatch.setenv("CHECKERLESS_S3_ACCESS_KEY", "test")
    monkeypatch.setenv("CHECKERLESS_S3_SECRET_KEY", "test")
    endpoint = request.getfixturevalue("s3_endpoint")
    return S3Store(bucket=f"cache-{os.getpid()}-{time.time_ns()}", endpoint_url=endpoint, access_key="test",
                   secret_key="test", create_bucket=True)


def test_stored_images_load_through_the_cache_and_bad_ones_raise_image_error(store, tmp_path):
    good, corrupt = png(1), png(2)[:100]  # cut inside its pixel data
    store.put_bytes("contents/x/images/0000000.png", good)
    store.put_bytes("contents/x/images/0000001.png", corrupt)
    images = _stored(store, tmp_path)
    entry = {"name": "a.png", "key": "contents/x/images/0000000.png", "bucket": None, "bytes": len(good)}
    assert images.load(entry).size == (24, 20)
    store.delete(entry["key"])
    assert images.load(entry).size == (24, 20), "a cached image is read from the disk"
    assert (images.cache.hits, images.cache.misses) == (1, 1)
    again = _stored(store, tmp_path)  # another job (or DataLoader worker) on this worker
    assert again.load(entry).size == (24, 20) and again._store is None, "a warm cache opens no store client"

    gone = {"name": "gone.png", "key": "contents/x/images/0000009.png", "bucket": None, "bytes": 10}
    with pytest.raises(ImageError, match=r"gone.png: gone from the store \(contents/x/images/0000009.png\)"):
        images.load(gone)
    with pytest.raises(ImageError, match="bad.png: cannot decode image"):
        images.load({"name": "bad.png", "key": "contents/x/images/0000001.png", "bucket": None, "bytes": len(corrupt)})
    store.put_bytes("contents/x/images/0000002.png", b"0123")
    changed = r"changed.png: changed in the store since the set was checked \(4 bytes, not 9\)"
    with pytest.raises(ImageError, match=changed):
        images.load({"name": "changed.png", "key": "contents/x/images/0000002.png", "bucket": None, "bytes": 9})


def test_an_image_in_another_bucket_is_read_through_the_same_endpoint(s3_endpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("CHECKERLESS_S3_ACCESS_KEY", "test")
    monkeypatch.setenv("CHECKERLESS_S3_SECRET_KEY", "test")
    own = S3Store(bucket=f"own-{time.time_ns()}", endpoint_url=s3_endpoint, access_key="test", secret_key="test",
                  create_bucket=True)
    theirs = S3Store(bucket=f"theirs-{time.time_ns()}", endpoint_url=s3_endpoint, access_key="test", secret_key="test",
                     create_bucket=True)
    theirs.put_bytes("photos/cat.png", png(3))
    images = _stored(own, tmp_path)
    entry = {"name": "photos/cat.png", "key": "photos/cat.png", "bucket": theirs.bucket, "bytes": len(png(3))}
    assert images.load(entry).size == (24, 20)
    with pytest.raises(ImageError, match="has no buckets"):  # a local store has none to read
        _stored(LocalStore(tmp_path / "data" / "store"), tmp_path).load(entry)


def test_the_store_being_down_is_a_store_error_not_a_skipped_image(tmp_path, monkeypatch):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("CHECKERLESS_S3_ACCESS_KEY", "test")
    monkeypatch.setenv("CHECKERLESS_S3_SECRET_KEY", "test")
    images = StoredImages({"store": "s3", "s3_bucket": "b", "s3_endpoint_url": f"http://127.0.0.1:{port}",
                           "data_dir": str(tmp_path)}, ContentCache(tmp_path / "cache", 1 << 20))
    with pytest.raises(StoreUnavailable):
        images.load({"name": "a.png", "key": "contents/x/images/0000000.png", "bucket": None, "bytes": 10})


def test_each_process_opens_its_own_store_client(tmp_path):
    images = _stored(LocalStore(tmp_path / "data" / "store"), tmp_path)
    mine = images.store(None)
    assert images.store(None) is mine
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    p = ctx.Process(target=lambda: out.put(images._store is mine and images.store(None) is not mine))
    p.start()
    assert out.get(timeout=30) is True
    p.join(timeout=30)

