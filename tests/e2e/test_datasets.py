"""A large content set through HTTP, as a user: one archive of 5,000 images made here, streamed
to the API, validated by a real worker on the data queue, then trained on; and a hostile
archive that fails with its reason while the worker goes on validating. Real Redis, moto's S3
server, real Celery workers."""

from __future__ import annotations

import io
import tarfile
import time

import numpy as np
import pytest
from PIL import Image

from service.core.stores import Stores
from service.core.keys import Keys
from service.core.storage import open_store
from tests.e2e.conftest import settings_of, wait_for
from tests.e2e.test_service import photo, submit, wait_state
from tests.zips import long_name_tar_gz

IMAGES = 5000


@pytest.fixture(scope="module")
def worker(start_worker):
    return start_worker(queues="train,data")


@pytest.fixture(scope="module")
def style_id(api) -> str:
    r = api.post("/v1/styles", files={"file": ("ihc.png", photo("immunohistochemistry", 64, 64), "image/png")})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def pattern(i: int) -> bytes:
    """A deterministic 32x32 PNG: a seeded colour gradient with a seeded block on it."""
    rng = np.random.default_rng(i)
    ramp = np.linspace(0, 1, 32)[:, None, None] * rng.integers(0, 256, 3) + rng.integers(0, 64, 3)
    pixels = np.broadcast_to(ramp, (32, 32, 3)).astype(np.uint8).copy()
    y, x = rng.integers(0, 24, 2)
    pixels[y:y + 8, x:x + 8] = rng.integers(0, 256, 3)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def archive(members: list[tuple[str, bytes] | tarfile.TarInfo]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tf.addfile(m)
                continue
            info = tarfile.TarInfo(m[0])
            info.size = len(m[1])
            tf.addfile(info, io.BytesIO(m[1]))
    return buf.getvalue()


def upload(api, data: bytes, name: str) -> dict:
    r = api.post("/v1/content-sets/archive", params={"name": name}, content=data,
                 headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 202, r.text
    assert r.json()["state"] == "validating"
    return r.json()


def validated(api, set_id: str, timeout: float) -> dict:
    return wait_for(lambda: (s := api.get(f"/v1/content-sets/{set_id}").json())["state"] != "validating" and s,
                    timeout=timeout, what=f"content set {set_id} to be validated", interval=0.5)


@pytest.mark.slow
def test_5000_images_in_one_archive_are_validated_and_trained_on(api, worker, style_id):
    """About a minute on a 2-core CPU: 5,000 images are the claim (validated one by one, then
    streamed into training)."""
    data = archive([(f"images/{i // 1000}/{i:05d}.png", pattern(i)) for i in range(IMAGES)])
    started = time.monotonic()
    content = upload(api, data, "patterns")
    uploaded = time.monotonic()
    seen: list[dict] = []

    def ready() -> dict | None:
        s = api.get(f"/v1/content-sets/{content['id']}").json()
        seen.append(s["progress"])
        return s if s["state"] != "validating" else None

    final = wait_for(ready, timeout=600, what="5,000 images to be validated", interval=0.5)
    done = time.monotonic()
    assert final["state"] == "ready", final
    assert final["count"] == IMAGES and final["skipped"] == [], final
    assert any(0 < p["members"] < IMAGES for p in seen), "no progress was shown while validating"
    print(f"\n| archive | upload | validation (upload answered to ready) |\n| --- | --- | --- |\n"
          f"| {IMAGES} PNGs of 32x32, tar.gz of {len(data) / 1e6:.1f} MB | {uploaded - started:.1f} s "
          f"| {done - uploaded:.1f} s |")

    job = submit(api, style_id, content_set_id=content["id"], steps=2, size=32, batch=2)
    job = wait_state(api, job["id"], {"succeeded", "failed"}, timeout=300)
    assert job["state"] == "succeeded", job.get("error")


def test_a_hostile_archive_fails_with_its_reason_and_the_worker_goes_on(api, worker):
    link = tarfile.TarInfo("cats/evil.png")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    hostile = upload(api, archive([("cats/ok.png", pattern(1)), link]), "hostile")
    final = validated(api, hostile["id"], timeout=300)
    assert final["state"] == "failed" and "'cats/evil.png'" in final["error"] and "symbolic link" in final["error"]
    assert final["count"] == 0
    for fmt in ("gnu", "pax"):  # members named with 20 MiB each: refused before a name is read, the record small
        named = upload(api, long_name_tar_gz(fmt, 20 * 1024 * 1024), f"long names ({fmt})")
        final = validated(api, named["id"], timeout=300)
        assert final["state"] == "failed" and "refused unread" in final["error"], final
        assert len(api.get(f"/v1/content-sets/{named['id']}").content) < 4000
    good = upload(api, archive([(f"{i}.png", pattern(i)) for i in range(3)] + [("notes.txt", b"hello")]), "good")
    final = validated(api, good["id"], timeout=300)
    assert final["state"] == "ready" and final["count"] == 3, final
    assert final["skipped"] == [{"name": "notes.txt", "reason": final["skipped"][0]["reason"]}]
    assert worker.proc.poll() is None


def test_a_validation_cut_off_by_a_killed_worker_starts_again_on_another(api, start_worker, service_env):
    start_worker.stop_all()  # this test's workers alone take the data queue
    first = start_worker(queues="data")
    content = upload(api, archive([(f"{i:04d}.png", pattern(i)) for i in range(1500)]), "cut off")
    wait_for(lambda: api.get(f"/v1/content-sets/{content['id']}").json()["progress"]["members"] >= 100,
             timeout=120, what="the validation to be under way")
    first.kill()  # the whole worker: its message stays unacknowledged in Redis for hours
    start_worker(queues="data")  # its sweeper finds the set's record gone stale and sends it again
    final = validated(api, content["id"], timeout=300)
    assert final["state"] == "ready" and final["count"] == 1500, final
    store = open_store(settings_of(service_env))
    assert Stores(store).content_sets.get(content["id"]).attempts == 2
    assert len(store.list(Keys.content_prefix(content["id"]))) == 1500  # the first attempt's members redone, not doubled
    assert not store.exists(Keys.content_archive(content["id"]))
