"""The object store: the same behaviour checked on a local folder and on S3 (moto's server over HTTP)."""

from __future__ import annotations

import os
import random
import socket
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from service.core.storage import (
    S3_MIN_PART_BYTES,
    LocalStore,
    ObjectNotFound,
    ObjectStore,
    S3Store,
    StoreUnavailable,
    check_key,
)

# moto's server accepts any credentials; these only need to be present.
CREDENTIALS = {"access_key": "test", "secret_key": "test"}


def free_port() -> int:
    """A port nothing listens on (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_s3_store(endpoint: str, **kwargs: object) -> S3Store:
    return S3Store(
        bucket=f"test-{uuid.uuid4().hex[:12]}",
        endpoint_url=endpoint,
        create_bucket=True,
        **CREDENTIALS,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    return make_s3_store(request.getfixturevalue("s3_endpoint"))


def random_file(path: Path, size: int, seed: int = 0) -> Path:
    import random

    path.write_bytes(random.Random(seed).randbytes(size))
    return path


def test_put_get_bytes_round_trip(store: ObjectStore) -> None:
    data = bytes(range(256)) * 10
    store.put_bytes("runs/r1/result.bin", data)
    assert store.get_bytes("runs/r1/result.bin") == data
    store.put_bytes("runs/r1/result.bin", b"replaced", content_type="text/plain")
    assert store.get_bytes("runs/r1/result.bin") == b"replaced"
    store.put_bytes("empty", b"")
    assert store.get_bytes("empty") == b""
    assert store.size("empty") == 0


def test_put_file_and_download_3mb(store: ObjectStore, tmp_path: Path) -> None:
    src = random_file(tmp_path / "model.pt", 3 * 1024 * 1024 + 17)
    store.put_file("runs/r1/model.pt", src)
    dest = tmp_path / "out" / "deeper" / "model.pt"  # parents do not exist yet
    assert store.download("runs/r1/model.pt", dest) == dest
    assert dest.read_bytes() == src.read_bytes()
    # No temp files left beside the download.
    assert sorted(os.listdir(dest.parent)) == ["model.pt"]
    # Downloading again replaces the file.
    store.put_bytes("runs/r1/model.pt", b"small")
    store.download("runs/r1/model.pt", dest)
    assert dest.read_bytes() == b"small"


def test_iter_chunks_reassembles(store: ObjectStore, tmp_path: Path) -> None:
    src = random_file(tmp_path / "big.bin", 2 * 1024 * 1024 + 5, seed=1)
    store.put_file("a/big.bin", src)
    chunks = list(store.iter_chunks("a/big.bin", chunk_size=256 * 1024))
    assert b"".join(chunks) == src.read_bytes()
    assert len(chunks) >= 8
    assert all(len(c) <= 256 * 1024 for c in chunks)
    assert b"".join(store.iter_chunks("a/big.bin")) == src.read_bytes()


def test_exists_and_size(store: ObjectStore) -> None:
    assert not store.exists("x/y.txt")
    store.put_bytes("x/y.txt", b"hello")
    assert store.exists("x/y.txt")
    assert store.size("x/y.txt") == 5
    assert not store.exists("x")  # a folder-like prefix is not an object


def test_list_under_prefix(store: ObjectStore) -> None:
    for key in ["runs/b/2.txt", "runs/a/1.txt", "runs/a/sub/deep/3.txt", "runs/ab/x.txt", "other/z.txt"]:
        store.put_bytes(key, key.encode())
    assert store.list("runs/a") == ["runs/a/1.txt", "runs/a/sub/deep/3.txt"]
    assert store.list("runs/a/") == ["runs/a/1.txt", "runs/a/sub/deep/3.txt"]
    assert store.list("runs") == [
        "runs/a/1.txt",
        "runs/a/sub/deep/3.txt",
        "runs/ab/x.txt",
        "runs/b/2.txt",
    ]
    assert store.list("nothing/here") == []


def test_list_page_is_the_sorted_listing_a_slice_at_a_time(store: ObjectStore) -> None:
    # Names where a folder's keys ('a/...') sort between files beside it ('a-b', 'a.b' < 'a/' < 'a0').
    keys = ["p/a-b", "p/a.b", "p/a/c.d/e", "p/a/c/d", "p/a/c-d", "p/a/c0", "p/a0", "p/b/x/y/z", "p/bb", "p/0",
            "p/a.b.c/d"]
    for key in keys + ["pq/no", "o/no"]:
        store.put_bytes(key, b"")
    listed = store.list("p")
    assert listed == sorted(keys)
    assert store.list_page("p", limit=100) == listed
    assert store.list_page("p/", limit=3) == listed[:3]
    for i, after in enumerate(listed):
        for limit in (1, 2, 100):
            assert store.list_page("p", after=after, limit=limit) == listed[i + 1 : i + 1 + limit], (after, limit)
    # `after` need not be a key: where it would sort is what counts, inside the prefix or not.
    assert store.list_page("p", after="p/a/c", limit=100) == [k for k in listed if k > "p/a/c"]  # a folder
    assert store.list_page("p", after="a", limit=100) == listed
    assert store.list_page("p", after="p0", limit=100) == []
    assert store.list_page("nothing/here", limit=5) == []
    with pytest.raises(ValueError):
        store.list_page("p", limit=0)
    with pytest.raises(ValueError):
        store.list_page("p", after="../x", limit=5)
    with pytest.raises(ValueError):
        store.list_page("", limit=5)


def test_a_local_delete_takes_the_folders_it_empties(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    store.put_bytes("i/a/b/1", b"")
    store.put_bytes("i/a/c/2", b"")
    store.delete("i/a/b/1")
    assert not (tmp_path / "store/i/a/b").exists() and (tmp_path / "store/i/a/c/2").is_file()
    store.delete("i/a/c/2")
    assert not (tmp_path / "store/i").exists() and (tmp_path / "store").is_dir()
    store.put_bytes("i/a/b/1", b"again")  # the folders come back with the next write
    assert store.list_page("i", limit=5) == ["i/a/b/1"]


def test_delete_and_delete_prefix(store: ObjectStore) -> None:
    for key in ["runs/a/1", "runs/a/2", "runs/a/sub/3", "runs/ab/4", "runs/b/5"]:
        store.put_bytes(key, b"x")
    store.delete("runs/b/5")
    assert not store.exists("runs/b/5")
    store.delete("runs/b/5")  # missing: no error
    store.delete("never/was")
    assert store.delete_prefix("runs/a") == 3
    assert store.list("runs") == ["runs/ab/4"]
    assert store.delete_prefix("runs/a") == 0
    # The key space is usable again after a prefix was deleted.
    store.put_bytes("runs/a/again", b"y")
    assert store.get_bytes("runs/a/again") == b"y"


def test_delete_prefix_many(store: ObjectStore) -> None:
    # More than one page of a listing (S3 lists 1000 keys a page).
    n = 1005
    with ThreadPoolExecutor(16) as pool:  # boto3 clients are thread-safe; this only saves time
        list(pool.map(lambda i: store.put_bytes(f"many/{i:05d}", b""), range(n)))
    keys = store.list("many")
    assert len(keys) == n and keys == sorted(keys)
    # A page longer than S3's 1000 keys a response, and one that starts part way.
    assert store.list_page("many", limit=1001) == keys[:1001]
    assert store.list_page("many", after=keys[3], limit=1002) == keys[4:]
    assert store.list_page("many", after=keys[999], limit=2) == keys[1000:1002]
    assert store.delete_prefix("many") == n
    assert store.list("many") == []


def test_missing_key_raises_object_not_found(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFound, match="nope/missing.bin"):
        store.get_bytes("nope/missing.bin")
    with pytest.raises(ObjectNotFound):
        store.download("nope/missing.bin", tmp_path / "dl" / "missing.bin")
    assert not (tmp_path / "dl" / "missing.bin").exists()
    if (tmp_path / "dl").exists():
        assert os.listdir(tmp_path / "dl") == []  # no temp file left behind
    with pytest.raises(ObjectNotFound):
        store.iter_chunks("nope/missing.bin")  # raised on the call, before any chunk
    with pytest.raises(ObjectNotFound):
        store.size("nope/missing.bin")


BAD_KEYS = ["../x", "a/../b", "/abs", "a//b", "a/", "a b", "ü", "", "./a", "a\\b", "a\nb"]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_check_key_refuses(key: str) -> None:
    with pytest.raises(ValueError):
        check_key(key)


@pytest.mark.parametrize("key", ["a", "runs/0f3a/model.pt", "A-b_c.d/e", "x/.hidden"])
def test_check_key_accepts(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize("key", ["../x", "/abs", "a//b", "a b", "ü"])
def test_store_methods_refuse_bad_keys(store: ObjectStore, key: str, tmp_path: Path) -> None:
    src = random_file(tmp_path / "f", 10)
    calls = [
        lambda: store.put_bytes(key, b"x"),
        lambda: store.put_file(key, src),
        lambda: store.put_stream(key, [b"x"]),
        lambda: store.get_bytes(key),
        lambda: store.download(key, tmp_path / "d"),
        lambda: store.iter_chunks(key),
        lambda: store.exists(key),
        lambda: store.size(key),
        lambda: store.list(key),
        lambda: store.folders(key),
        lambda: store.delete(key),
        lambda: store.delete_prefix(key),
        lambda: store.presigned_url(key, expires_s=60),
    ]
    for call in calls:
        with pytest.raises(ValueError):
            call()
    with pytest.raises(ValueError):
        store.list("")  # an empty prefix would mean "everything"
    with pytest.raises(ValueError):
        store.delete_prefix("")


def test_presigned_url_local_is_none(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put_bytes("a/b", b"x")
    assert store.presigned_url("a/b", expires_s=60) is None


def test_presigned_url_s3_fetches_bytes(s3_endpoint: str) -> None:
    # The "public" endpoint names the same server by another host name (localhost
    # instead of 127.0.0.1), as a browser outside the cluster would. moto checks no
    # signatures, so this shows the URL names the public host and the right object,
    # not that the signature is valid.
    public = s3_endpoint.replace("127.0.0.1", "localhost")
    store = make_s3_store(s3_endpoint, public_endpoint_url=public)
    store.put_bytes("runs/r1/out.png", b"\x89PNG fake", content_type="image/png")
    url = store.presigned_url("runs/r1/out.png", expires_s=300)
    assert url is not None and url.startswith(public + "/")
    assert "X-Amz-Signature=" in url
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"\x89PNG fake"
        assert response.headers["Content-Type"] == "image/png"
    # Without a public endpoint, the URL names the endpoint itself.
    plain = make_s3_store(s3_endpoint)
    plain.put_bytes("k", b"v")
    assert str(plain.presigned_url("k", expires_s=60)).startswith(s3_endpoint + "/")
    with pytest.raises(ValueError):
        plain.presigned_url("k", expires_s=0)


def test_s3_uploads_send_no_default_checksums(s3_endpoint: str, tmp_path: Path) -> None:
    # botocore >= 1.36 adds CRC checksums to uploads unless told "when_required";
    # MinIO and other S3-compatible servers reject them, moto does not, so look at
    # the requests themselves.
    store = make_s3_store(s3_endpoint)
    sent: list[dict[str, str]] = []

    def record(request: Any, **_: Any) -> None:
        sent.append({k.lower(): str(v) for k, v in request.headers.items()})

    store._client.meta.events.register("before-send.s3.PutObject", record)
    store.put_bytes("a/b", b"x" * 1000)
    store.put_file("a/c", random_file(tmp_path / "f", 100_000))
    assert len(sent) == 2
    for headers in sent:
        assert not [h for h in headers if h.startswith("x-amz-checksum-") or h == "x-amz-trailer"], headers
        assert "x-amz-sdk-checksum-algorithm" not in headers


def test_ping_live(store: ObjectStore) -> None:
    store.ping()


def test_describe(store: ObjectStore, s3_endpoint: str, tmp_path: Path) -> None:
    text = store.describe()
    if isinstance(store, LocalStore):
        assert text == f"local folder {tmp_path / 'store'}"
    else:
        assert isinstance(store, S3Store)
        assert text == f"s3 bucket {store.bucket} at {s3_endpoint}"


def test_ping_unreachable_s3_is_fast() -> None:
    port = free_port()  # nothing listens there
    start = time.monotonic()
    store = S3Store(
        bucket="b",
        endpoint_url=f"http://127.0.0.1:{port}",
        connect_timeout=1,
        max_attempts=1,
        **CREDENTIALS,
    )
    with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}"):
        store.ping()
    with pytest.raises(StoreUnavailable):
        store.get_bytes("a/b")
    assert time.monotonic() - start < 5


def test_ping_missing_bucket(s3_endpoint: str) -> None:
    store = S3Store(bucket="does-not-exist", endpoint_url=s3_endpoint, **CREDENTIALS)
    with pytest.raises(StoreUnavailable, match="does-not-exist"):
        store.ping()


def test_ping_missing_local_folder(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "gone")
    (tmp_path / "gone").rmdir()
    with pytest.raises(StoreUnavailable, match="does not exist"):
        store.ping()


def test_ensure_bucket_is_idempotent(s3_endpoint: str) -> None:
    store = make_s3_store(s3_endpoint)
    store.ensure_bucket()
    S3Store(bucket=store.bucket, endpoint_url=s3_endpoint, create_bucket=True, **CREDENTIALS).ping()


def test_local_writes_leave_no_temp_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    store.put_bytes("a/b.bin", b"1")
    store.put_file("a/c.bin", random_file(tmp_path / "f", 1000))
    assert sorted(os.listdir(tmp_path / "s" / "a")) == ["b.bin", "c.bin"]
    # A half-written temp file (as during a write) is not listed as an object.
    (tmp_path / "s" / "a" / ".b.bin.xyz.part~").write_bytes(b"partial")
    assert store.list("a") == ["a/b.bin", "a/c.bin"]


def _chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _open_uploads(store: ObjectStore) -> list:
    if not isinstance(store, S3Store):
        return []
    return store._client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])


@pytest.mark.parametrize("size", [0, 1000, 2 * S3_MIN_PART_BYTES + 12345])  # none, one part, three parts
def test_put_stream_stores_what_the_chunks_hold(store: ObjectStore, size: int) -> None:
    data = random.Random(size).randbytes(size)
    assert store.put_stream("up/archive", _chunks(data)) == size
    assert store.get_bytes("up/archive") == data
    assert _open_uploads(store) == []


def test_put_stream_that_fails_keeps_nothing(store: ObjectStore, tmp_path: Path) -> None:
    store.put_bytes("up/archive", b"the object before")

    def failing() -> Iterator[bytes]:
        yield from _chunks(random.Random(1).randbytes(2 * S3_MIN_PART_BYTES + 1))  # two parts uploaded
        raise RuntimeError("the client went away")

    with pytest.raises(RuntimeError, match="went away"):
        store.put_stream("up/archive", failing())
    with pytest.raises(RuntimeError, match="went away"):
        store.put_stream("up/new", failing())
    assert store.get_bytes("up/archive") == b"the object before"  # the old object is untouched
    assert not store.exists("up/new")
    assert _open_uploads(store) == []  # the multipart upload was aborted: no parts left billed
    if isinstance(store, LocalStore):
        assert [p.name for p in (store.root / "up").iterdir()] == ["archive"]  # no temp file left


def test_s3_part_size_is_at_least_s3s_smallest(s3_endpoint: str) -> None:
    with pytest.raises(ValueError, match="at least"):
        make_s3_store(s3_endpoint, part_bytes=S3_MIN_PART_BYTES - 1)


def test_folders_are_named_without_listing_their_objects(store: ObjectStore) -> None:
    for key in ("sets/a/meta.json", "sets/a/images/0.png", "sets/b/images/deep/1.png", "sets/top.json", "setsx/c/d"):
        store.put_bytes(key, b"x")
    assert store.folders("sets") == ["a", "b"] == store.folders("sets/")
    assert store.folders("sets/b") == ["images"] and store.folders("nothing") == []


def test_version_names_a_write_without_reading_it(store: ObjectStore) -> None:
    """ObjectStore.version: changes with every write, and on S3 is the version get_versioned
    and put_if use (the ETag, from a HEAD request)."""
    store.put_bytes("v/one", b"abc")
    first = store.version("v/one")
    assert store.version("v/one") == first
    if isinstance(store, S3Store):
        assert first == store.get_versioned("v/one")[1]
    store.put_bytes("v/one", b"abcd")
    assert store.version("v/one") != first
    with pytest.raises(ObjectNotFound):
        store.version("v/none")


def test_another_bucket_through_the_same_client(store: ObjectStore, s3_endpoint: str) -> None:
    """ObjectStore.in_bucket: S3 reads a bucket an operator named (same endpoint, same
    credentials); its own bucket or None is itself; a local store has no buckets."""
    assert store.in_bucket(None) is store
    if not isinstance(store, S3Store):
        with pytest.raises(ValueError, match="has no buckets"):
            store.in_bucket("elsewhere")
        return
    other = make_s3_store(s3_endpoint)
    other.put_bytes("shared/x", b"xyz")
    seen = store.in_bucket(other.bucket)
    assert seen.get_bytes("shared/x") == b"xyz" and store.in_bucket(store.bucket) is store
    assert not store.exists("shared/x")  # the original still reads its own bucket
