"""Content sets as resources through the API (TestClient; the local store and S3 on moto's
server): archives streamed to the store under their own limit, S3 prefixes registered by
operators, every refusal knowable at upload, and jobs refused on a set that is not ready."""

from __future__ import annotations

import gzip
import io
import random
import tarfile
import uuid
from collections.abc import Iterator

import boto3
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service.api.main import create_app
from service.core.content_sets import ContentSetState
from service.core.keys import Keys
from service.core.settings import Settings
from service.core.storage import S3_MIN_PART_BYTES, S3Store
from tests.zips import zip_of

LIMIT = 3 * S3_MIN_PART_BYTES  # the archive limit of these tests: over it takes a few parts


def png(seed: int = 0, size: int = 24) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def tar_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def noise_tar(size: int) -> Iterator[bytes]:
    """A tar of one incompressible member, about `size` bytes, in 64 KiB chunks (no Content-Length)."""
    header = tarfile.TarInfo("noise.bin")
    header.size = size
    yield header.tobuf()
    rng = random.Random(size)
    for start in range(0, size, 1 << 16):
        yield rng.randbytes(min(1 << 16, size - start))


def bucket_name() -> str:
    return f"cs-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["local", "s3"])
def settings(request, tmp_path) -> Settings:
    common = {"data_dir": tmp_path / "data", "max_archive_bytes": LIMIT, "upload_part_bytes": S3_MIN_PART_BYTES}
    if request.param == "local":
        return Settings(**common)
    return Settings(**common, store="s3", s3_endpoint_url=request.getfixturevalue("s3_endpoint"),
                    s3_bucket=bucket_name(), s3_access_key="test", s3_secret_key="test")


def client(settings: Settings, *, admin: bool = False) -> TestClient:
    app = create_app(settings)
    _, token = app.state.services.keys.create(name="test", admin=admin)
    return TestClient(app, headers={"X-API-Key": token})


@pytest.fixture
def api(settings) -> Iterator[TestClient]:
    with client(settings) as c:
        yield c


def sent_to_validate(api: TestClient, set_id: str) -> bool:
    """Whether the embedded broker holds a message asking a worker to validate this set."""
    folder = api.app.state.services.settings.broker_dir / "in"
    return any(set_id in f.read_text(errors="replace") and "validate_content_set" in f.read_text(errors="replace")
               for f in folder.iterdir() if f.is_file())


def open_uploads(api: TestClient) -> list:
    store = api.app.state.services.store
    return store._client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) if isinstance(store, S3Store) else []


@pytest.mark.parametrize("kind", ["tar", "tar.gz", "zip"])
def test_an_archive_is_stored_as_it_came_and_sent_to_be_validated(api, kind):
    members = {"a.png": png(1), "b/c.png": png(2)}
    body = {"tar": lambda: tar_of(members), "tar.gz": lambda: gzip.compress(tar_of(members)),
            "zip": lambda: zip_of(members)}[kind]()
    r = api.post("/v1/content-sets/archive?name=holiday", content=body)
    assert r.status_code == 202, r.text
    got = r.json()
    assert (got["state"], got["source"], got["name"], got["progress"]["total_bytes"]) == (
        "validating", "archive", "holiday", len(body))
    assert api.app.state.services.store.get_bytes(Keys.content_archive(got["id"])) == body
    assert sent_to_validate(api, got["id"])
    assert api.get(f"/v1/content-sets/{got['id']}").json()["state"] == "validating"
    assert [s["id"] for s in api.get("/v1/content-sets").json()] == [got["id"]]


def test_a_streamed_archive_of_several_parts_is_stored_whole(api):
    body = b"".join(noise_tar(2 * S3_MIN_PART_BYTES + 1000))
    r = api.post("/v1/content-sets/archive", content=noise_tar(2 * S3_MIN_PART_BYTES + 1000))  # chunked, no length
    assert r.status_code == 202, r.text
    assert api.app.state.services.store.get_bytes(Keys.content_archive(r.json()["id"])) == body
    assert r.json()["progress"]["total_bytes"] == len(body) and open_uploads(api) == []


def test_what_is_not_an_archive_is_refused_by_its_first_bytes(api):
    for body in (png(1), b"name,value\n" * 100, b"PK"):
        r = api.post("/v1/content-sets/archive", content=body)
        assert r.status_code == 415, r.text
        assert "tar, a tar.gz (gzip) or a zip" in r.json()["detail"]
    r = api.post("/v1/content-sets/archive", content=b"")
    assert r.status_code == 400 and "body is empty" in r.json()["detail"]
    assert api.app.state.services.store.list("contents") == []


def test_an_archive_over_the_limit_is_refused_and_nothing_is_kept(api):
    r = api.post("/v1/content-sets/archive", content=b"x" * 10, headers={"Content-Length": str(LIMIT + 1)})
    assert r.status_code == 413 and f"larger than the limit of {LIMIT} bytes" in r.json()["detail"]
    r = api.post("/v1/content-sets/archive", content=noise_tar(LIMIT + 1))  # no Content-Length: found while it comes
    assert r.status_code == 413 and f"larger than the limit of {LIMIT} bytes" in r.json()["detail"]
    assert api.app.state.services.store.list("contents") == []
    assert open_uploads(api) == []  # the multipart upload was aborted, its parts dropped
    assert api.get("/v1/content-sets").json() == []


def test_an_archive_under_the_limit_passes_the_small_uploads_body_limit(settings):
    with client(settings.model_copy(update={"max_upload_bytes": 1000})) as api:
        assert api.post("/v1/content-sets/archive", content=tar_of({"a.png": png(1, size=64)})).status_code == 202
        assert api.post("/v1/styles", files={"file": ("s.png", png(1, size=64), "image/png")}).status_code == 413


def test_a_job_on_a_set_that_is_not_ready_is_a_conflict(api):
    style = api.post("/v1/styles", files={"file": ("s.png", png(9), "image/png")}).json()["id"]
    set_id = api.post("/v1/content-sets/archive", content=tar_of({"a.png": png(1)})).json()["id"]
    for path, extra in (("/v1/jobs", {}), ("/v1/experiments", {"variants": ["deconv", "subpixel"]})):
        r = api.post(path, json={"style_id": style, "content_set_id": set_id, "steps": 2, **extra})
        assert r.status_code == 409 and f"content set {set_id} is validating (0 members read" in r.json()["detail"]
    stores = api.app.state.services.stores

    def fail(r) -> None:
        r.state, r.error = ContentSetState.failed, "no readable image among 1 member"

    stores.content_sets.update(set_id, fail)  # as the validating worker would
    r = api.post("/v1/jobs", json={"style_id": style, "content_set_id": set_id, "steps": 2})
    assert r.status_code == 409 and r.json()["detail"] == f"content set {set_id} failed: no readable image among 1 member"


def test_a_small_upload_is_ready_at_once_with_its_manifest(api):
    r = api.post("/v1/content-sets?name=two", files=[("files", ("a.png", png(1), "image/png")),
                                                     ("files", ("b.txt", b"hello", "text/plain"))])
    assert r.status_code == 201, r.text
    got = r.json()
    assert (got["state"], got["source"], got["count"], got["name"]) == ("ready", "images", 1, "two")
    assert got["skipped"][0]["name"] == "b.txt"
    manifest = api.app.state.services.stores.content_sets.get_manifest(got["id"])
    assert [(i.name, i.width) for i in manifest.images] == [("a.png", 24)] and manifest.skipped[0].name == "b.txt"


def test_a_set_deleted_while_validating_leaves_nothing(api):
    set_id = api.post("/v1/content-sets/archive", content=tar_of({"a.png": png(1)})).json()["id"]
    assert api.delete(f"/v1/content-sets/{set_id}").status_code == 204
    assert api.get(f"/v1/content-sets/{set_id}").status_code == 404
    assert api.app.state.services.store.list("contents") == []


def test_when_the_queue_is_unreachable_the_set_fails_with_the_reason(settings):
    with client(settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})) as api:
        r = api.post("/v1/content-sets/archive", content=tar_of({"a.png": png(1)}))
        assert r.status_code == 503, r.text
        (got,) = api.get("/v1/content-sets").json()
        assert got["state"] == "failed" and "could not be queued for validation" in got["error"]
        assert not api.app.state.services.store.exists(Keys.content_archive(got["id"]))


def test_registering_a_prefix_is_for_operators_on_s3(settings):
    with client(settings) as user:
        r = user.post("/v1/content-sets/register", json={"prefix": "photos/"})
        assert r.status_code == 403 and "needs an admin key" in r.json()["detail"]
    with client(settings, admin=True) as admin:
        r = admin.post("/v1/content-sets/register", json={"prefix": "photos/"})
        if settings.store == "local":
            assert r.status_code == 400 and "needs an S3 store" in r.json()["detail"]
            return
        s3 = boto3.client("s3", endpoint_url=settings.s3_endpoint_url, aws_access_key_id="test",
                          aws_secret_access_key="test", region_name="us-east-1")
        theirs = bucket_name()
        s3.create_bucket(Bucket=theirs)
        for i in range(3):
            s3.put_object(Bucket=theirs, Key=f"photos/2024/{i}.png", Body=png(i))
        for body, status, says in (
                ({"prefix": "photos/", "bucket": bucket_name()}, 400, "does not exist"),
                ({"prefix": "photos/2023", "bucket": theirs}, 400, f"no object under s3://{theirs}/photos/2023/"),
                ({"prefix": "photos/20", "bucket": theirs}, 400, "no object under"),  # a folder, not a key's start
                ({"prefix": "", "bucket": theirs}, 422, "prefix")):
            r = admin.post("/v1/content-sets/register", json=body)
            assert r.status_code == status and says in r.json()["detail"], (body, r.text)
        r = admin.post("/v1/content-sets/register", json={"prefix": "photos/2024", "bucket": theirs, "name": "2024"})
        assert r.status_code == 202, r.text
        got = r.json()
        assert (got["source"], got["bucket"], got["prefix"], got["state"]) == ("prefix", theirs, "photos/2024/",
                                                                               "validating")
        assert sent_to_validate(admin, got["id"])
        assert admin.delete(f"/v1/content-sets/{got['id']}").status_code == 204
        assert s3.list_objects_v2(Bucket=theirs, Prefix="photos/")["KeyCount"] == 3  # the operator's stay


def test_curl_dash_t_puts_the_same_upload(api):
    body = tar_of({"a.png": png(1)})
    r = api.put("/v1/content-sets/archive?name=put", content=body)
    assert r.status_code == 202 and r.json()["name"] == "put"
    assert api.app.state.services.store.get_bytes(Keys.content_archive(r.json()["id"])) == body
