"""Through HTTP: a job on an uploaded content set trains on images streamed from the store
through the worker's cache, with nothing of the set downloaded before the child starts.
Real Redis, moto's S3 server, a real Celery worker and its training child."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import wait_for
from tests.e2e.test_service import TINY, photo, wait_state

pytestmark = pytest.mark.slow  # trains a few steps in a real worker


@pytest.fixture(scope="module")
def worker(start_worker):
    return start_worker(queues="train")


def test_a_job_streams_its_content_set_through_the_workers_cache(api, worker, service_env, tmp_path):
    style = api.post("/v1/styles", files={"file": ("ihc.png", photo("immunohistochemistry", 64, 64), "image/png")})
    assert style.status_code == 201, style.text
    files = [("files", (f"{name}.png", photo(name, w, h), "image/png"))
             for name, w, h in (("astronaut", 80, 80), ("coffee", 96, 64), ("chelsea", 72, 60))]
    content = api.post("/v1/content-sets", files=files)
    assert content.status_code == 201, content.text
    set_id = content.json()["id"]

    r = api.post("/v1/jobs", json={"style_id": style.json()["id"], "content_set_id": set_id, **TINY, "steps": 6})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    work = Path(service_env["CHECKERLESS_DATA_DIR"]) / "work"
    scratch = work / job_id / "attempt-1"
    spec = json.loads(wait_for(lambda: (scratch / "spec.json").exists() and (scratch / "spec.json").read_text(),
                               timeout=120, what="the training child's spec"))
    # The child was started with the set's image list, not a folder of its images.
    assert spec["content"]["label"] == f"content-set:{set_id}"
    assert "s3_secret_key" not in spec["content"]["store"], "credentials stay in the environment"
    assert not (scratch / "content").exists()
    listed = json.loads(Path(spec["content"]["images"]).read_text())
    assert sorted(i["name"] for i in listed) == ["astronaut.png", "chelsea.png", "coffee.png"]

    job = wait_state(api, job_id, {"succeeded", "failed"})
    assert job["state"] == "succeeded", job
    cached = sorted(p.stat().st_size for p in (work / "content-cache").glob("??/*"))
    assert cached == sorted(i["bytes"] for i in listed), "every image came through the worker's cache"

    from models.checkpoint import read_checkpoint

    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(api.get(f"/v1/jobs/{job_id}/checkpoint").content)
    assert read_checkpoint(ckpt)[0].content == f"content-set:{set_id}"
