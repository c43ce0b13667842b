"""The routes through FastAPI's TestClient on the local store, with the machine's Redis as the
broker (a database of our own; no worker consumes it): validation, 404s, the error mapping,
and experiments that are created whole or not at all."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient
from PIL import Image

from models.config import DEFAULTS, LIMITS
from service.api.main import create_app
from service.core.errors import Unavailable
from service.core.keys import Keys
from service.core.queue import JobQueue, make_celery
from service.core.records import JobState
from service.core.settings import Settings

from tests.conftest import service_redis_db

REDIS_DB = service_redis_db()  # ours alone: flushed before and after


@pytest.fixture
def settings(tmp_path) -> Settings:
    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    client.flushdb()
    yield Settings(data_dir=tmp_path / "data", broker_url=f"redis://127.0.0.1:6379/{REDIS_DB}", max_upload_bytes=200_000)
    client.flushdb()


class FailsAfter(JobQueue):
    """The real queue, whose broker becomes unreachable after `n` messages."""

    def __init__(self, app, n: int):
        super().__init__(app)
        self.left = n

    def send(self, task: str, item_id: str) -> None:
        if self.left == 0:
            raise Unavailable("the job queue is unreachable (ConnectionError); try again later")
        self.left -= 1
        super().send(task, item_id)


def client_for(settings: Settings, queue: JobQueue | None = None, *, store=None, token: str | None = None,
               **key) -> TestClient:
    """A client of a fresh app, holding an API key (a new owner's unless `token` is given)."""
    app = create_app(settings, queue=queue, store=store)
    if token is None:
        _, token = app.state.services.keys.create(name="test", **key)
    return TestClient(app, headers={"X-API-Key": token})


@pytest.fixture
def api(settings) -> TestClient:
    with client_for(settings) as c:
        yield c


def png(w: int = 32, h: int = 32) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def style_id(api) -> str:
    r = api.post("/v1/styles", files={"file": ("s.png", png(), "image/png")})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.mark.parametrize("body, fragment", [
    ({"decoder": "transposed"}, "unknown decoder 'transposed'"),
    ({"steps": 0}, "steps"),
    ({"size": LIMITS["size"][1] + 1}, "size"),
    ({"batch": 0}, "batch"),
    ({"lr": 0}, "lr"),
    ({"colour": "blue"}, "colour"),
    ({"precision": "fp16"}, "precision: unknown precision 'fp16'; valid: auto, 32, bf16"),
    ({"stability_shift": "two"}, "stability_shift: unknown stability shift 'two'; valid: one, subgrid"),
    ({"filtered_relu": "maybe"}, "filtered_relu"),
])
def test_bad_job_settings_are_422_naming_the_field(api, style_id, body, fragment):
    r = api.post("/v1/jobs", json={"style_id": style_id, **body})
    assert r.status_code == 422 and fragment in r.json()["detail"], r.text


def test_unknown_or_malformed_ids_are_404(api, style_id):
    for path in ("/v1/jobs/" + "0" * 32, "/v1/jobs/nothex", "/v1/experiments/" + "f" * 32,
                 "/v1/stylizations/" + "a" * 32, "/v1/jobs/" + "0" * 32 + "/checkpoint"):
        r = api.get(path)
        assert r.status_code == 404 and r.json()["detail"].startswith("no "), path
    r = api.post("/v1/jobs", json={"style_id": "f" * 32})
    assert r.status_code == 404 and "no style" in r.json()["detail"]
    r = api.post("/v1/jobs", json={"style_id": style_id, "content_set_id": "e" * 32})
    assert r.status_code == 404 and "no content set" in r.json()["detail"]


def test_a_validation_error_lists_ten_problems_and_counts_the_rest(api, style_id):
    r = api.post("/v1/jobs", json={"style_id": style_id, **{f"extra{i}": 0 for i in range(500)}})
    body = r.json()
    assert r.status_code == 422 and len(r.content) < 2000, len(r.content)
    assert [e["field"] for e in body["errors"]] == [f"extra{i}" for i in range(10)] and body["more"] == 490
    assert body["detail"].endswith("; and 490 more problems")
    # A name or message that quotes a long input is cut, saying how long it was.
    r = api.post("/v1/jobs", json={"style_id": style_id, "k" * 10_000: 1})
    assert r.status_code == 422 and "(10000 characters)" in r.json()["detail"] and len(r.content) < 1000
    r = api.post("/v1/jobs", json={"style_id": style_id, "decoder": "x" * 10_000})
    assert r.status_code == 422 and "characters)" in r.json()["detail"] and len(r.content) < 2000


def test_json_bodies_are_bounded_in_bytes_keys_and_depth_before_validation(api, style_id):
    from service.api.schemas import MAX_JSON_BYTES, MAX_JSON_DEPTH, MAX_JSON_ITEMS

    # Past the item cap: one problem, not one per key (pydantic's extra="forbid" makes one each).
    r = api.post("/v1/jobs", json={"style_id": style_id, **{f"k{i}": 0 for i in range(MAX_JSON_ITEMS)}})
    assert r.status_code == 422 and r.json()["more"] == 0, r.text
    assert f"more than {MAX_JSON_ITEMS} keys and list items" in r.json()["detail"]
    r = api.post("/v1/experiments", json={"style_id": style_id, "variants": [1] * MAX_JSON_ITEMS})
    assert r.status_code == 422 and "more than" in r.json()["detail"]
    deep: list = [1]
    for _ in range(MAX_JSON_DEPTH):
        deep = [deep]
    r = api.post("/v1/jobs", json={"style_id": style_id, "decoder": deep})
    assert r.status_code == 422 and f"deeper than {MAX_JSON_DEPTH}" in r.json()["detail"]
    # Past the byte limit: 413 before parsing, by Content-Length or while a chunked body streams.
    big = b'{"style_id": "' + b"f" * MAX_JSON_BYTES + b'"}'
    for content in (big, iter([big[:1000], big[1000:]])):
        r = api.post("/v1/jobs", content=content, headers={"content-type": "application/json"})
        assert r.status_code == 413 and f"limit of {MAX_JSON_BYTES} bytes for JSON" in r.json()["detail"], r.text
    r = api.post("/v1/content-sets/register", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413
    # A real request is far below every bound.
    r = api.post("/v1/experiments", json={"style_id": style_id, "steps": 3, "variants": [
        {"decoder": ["deconv", "resize-nearest"], "downsample": "stride-conv", "loss_pooling": "avg"}, "deconv"]})
    assert r.status_code == 201, r.text


def test_every_route_with_a_json_body_reads_it_under_the_limit():
    import pkgutil
    from importlib import import_module

    from fastapi.params import Form
    from fastapi.routing import APIRoute

    from service.api import routes as package
    from service.api.json_body import JsonBodyRoute

    modules = [import_module(f"{package.__name__}.{m.name}") for m in pkgutil.iter_modules(package.__path__)]
    json_routes = [r for m in modules if hasattr(m, "router") for r in m.router.routes if isinstance(r, APIRoute)
                   and r.body_field is not None and not isinstance(r.body_field.field_info, Form)]
    assert {r.path for r in json_routes} >= {"/jobs", "/experiments", "/content-sets/register"}
    assert all(isinstance(r, JsonBodyRoute) for r in json_routes), [r.path for r in json_routes]


def test_long_ids_are_refused_or_echoed_cut_short(api):
    r = api.post("/v1/jobs", json={"style_id": "f" * 2000})
    assert r.status_code == 422 and "style_id: String should have at most 64 characters" in r.json()["detail"]
    assert len(r.content) < 500
    for body in ({"style_ids": ["builtin:ihc", "a" * 65]}, {"style_id": "builtin:ihc", "content_set_id": "c" * 65}):
        assert api.post("/v1/jobs", json=body).status_code == 422, body
    r = api.get("/v1/jobs/" + "a" * 10_000)
    assert r.status_code == 404 and r.json()["detail"] == f"no job {'a' * 40!r}... (10000 characters)"
    # Any domain error's message is bounded, whatever it quotes.
    r = api.get("/v1/builtin-styles/" + "n" * 20_000 + "/thumbnail")
    assert r.status_code == 404 and "(" in r.json()["detail"] and len(r.content) < 2200, len(r.content)


def test_a_queued_job_is_cancelled_at_once_and_conflicts_are_409(api, style_id):
    job = api.post("/v1/jobs", json={"style_id": style_id, "steps": 3}).json()
    assert job["state"] == "queued" and job["config"]["checkpoint_every"] == DEFAULTS.checkpoint_every
    r = api.post(f"/v1/jobs/{job['id']}/stylize", files=[("files", ("a.png", png(), "image/png"))])
    assert r.status_code == 409 and "only a succeeded job can stylise" in r.json()["detail"]
    r = api.post(f"/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 202 and r.json()["state"] == "cancelled"
    r = api.post(f"/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 409 and "already cancelled" in r.json()["detail"]
    r = api.get(f"/v1/jobs/{job['id']}/report")
    assert r.status_code == 404 and "has no report" in r.json()["detail"]
    assert api.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert api.get(f"/v1/jobs/{job['id']}").status_code == 404


def test_bad_images_are_422_and_big_bodies_413(api):
    r = api.post("/v1/styles", files={"file": ("s.png", b"not an image", "image/png")})
    assert r.status_code == 422 and "not an image" in r.json()["detail"]
    r = api.post("/v1/styles", files={"file": ("s.png", b"x" * 300_000, "image/png")})
    assert r.status_code == 413 and "larger than the limit" in r.json()["detail"]


def test_an_unreachable_broker_is_503_and_the_job_says_why(settings, style_id, api):
    dead = settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    with client_for(dead, store=api.app.state.services.store, token=api.headers["X-API-Key"]) as c:
        r = c.post("/v1/jobs", json={"style_id": style_id, "steps": 3})
        assert r.status_code == 503 and "job queue is unreachable" in r.json()["detail"]
        (job,) = c.get("/v1/jobs").json()
        assert job["state"] == "failed" and "could not be queued" in job["error"]


def test_an_experiment_is_created_whole_or_not_at_all(settings, style_id, api):
    store = api.app.state.services.store
    with client_for(settings, FailsAfter(make_celery(settings), 1), store=store, token=api.headers["X-API-Key"]) as c:
        r = c.post("/v1/experiments", json={"style_id": style_id, "variants": ["deconv", "resize-nearest"], "steps": 3})
        assert r.status_code == 503 and "unreachable" in r.json()["detail"]
        assert c.get("/v1/jobs").json() == [] and c.get("/v1/experiments").json() == []
        assert store.list("jobs") == [] and store.list("experiments") == [] and store.list("active") == []
    # With the broker up, the same request makes both jobs, paired.
    r = api.post("/v1/experiments", json={"style_id": style_id, "variants": ["deconv", "resize-nearest"], "steps": 3})
    assert r.status_code == 201, r.text
    variants = r.json()["variants"]
    assert [v["decoder"] for v in variants] == ["deconv", "resize-nearest"]
    assert variants[0]["config"] | {"decoder": "x"} == variants[1]["config"] | {"decoder": "x"}
    # On the queue: both, and the message sent before the broker failed, for a job taken back:
    # the worker that receives it finds nothing to run.
    messages = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB).lrange("train", 0, -1)
    queued = [json.loads(json.loads(m)["headers"]["argsrepr"].replace("'", '"'))[0] for m in messages]
    assert len(queued) == 3 and {v["id"] for v in variants} < set(queued)
    (orphan,) = set(queued) - {v["id"] for v in variants}
    assert api.get(f"/v1/jobs/{orphan}").status_code == 404


def test_the_schema_carries_the_training_configs_defaults_and_limits(api):
    """The web form fills itself from this (service/api/web/index.js): one place for each default."""
    fields = api.get("/openapi.json").json()["components"]["schemas"]["JobCreate"]["properties"]
    for name in ("size", "steps", "batch", "seed", "style_weight", "lr", "decoder", "precision"):
        assert fields[name]["default"] == getattr(DEFAULTS, name), name
    assert (fields["size"]["minimum"], fields["size"]["maximum"]) == LIMITS["size"]
    assert (fields["steps"]["minimum"], fields["steps"]["maximum"]) == LIMITS["steps"]
    from models.vocabulary import PRECISIONS

    assert fields["precision"]["enum"] == list(PRECISIONS)  # the form's select


def test_the_precision_is_a_setting_of_jobs_and_experiments_and_the_job_says_what_it_trained_in(api, style_id):
    from service.core.stores.jobs import apply_progress
    from service.core.protocol import TrainProgress

    job = api.post("/v1/jobs", json={"style_id": style_id, "steps": 3, "precision": "bf16"}).json()
    assert job["config"]["precision"] == "bf16" and job["trained_precision"] is None  # not reported yet
    exp = api.post("/v1/experiments", json={"style_id": style_id, "steps": 3, "precision": "32",
                                            "variants": ["deconv", "resize-nearest"]}).json()
    assert exp["settings"]["precision"] == "32" and {v["config"]["precision"] for v in exp["variants"]} == {"32"}
    default = api.post("/v1/jobs", json={"style_id": style_id, "steps": 3}).json()
    assert default["config"]["precision"] == DEFAULTS.precision
    assert default["config"]["filtered_relu"] is DEFAULTS.filtered_relu is True  # the default network's ReLUs
    plain = api.post("/v1/jobs", json={"style_id": style_id, "steps": 3, "filtered_relu": False}).json()
    assert plain["config"]["filtered_relu"] is False
    # A worker that reports what "auto" became on its machine: the record keeps it, the API shows it.
    stores = api.app.state.services.stores

    def progress(r) -> None:
        r.move(JobState.running)
        apply_progress(r, TrainProgress(step=1, steps=3, start_step=0, losses={"loss": 1.0}, probe=None,
                                        seconds_per_step=None, precision="bf16-mixed"))

    stores.jobs.update(default["id"], progress)
    assert api.get(f"/v1/jobs/{default['id']}").json()["trained_precision"] == "bf16-mixed"


def test_presigned_urls_on_a_local_store_are_409(api, style_id):
    job = api.post("/v1/jobs", json={"style_id": style_id, "steps": 3}).json()
    api.app.state.services.store.put_bytes(f"jobs/{job['id']}/checkpoint/last.ckpt", b"ckpt")
    r = api.get(f"/v1/jobs/{job['id']}/checkpoint", params={"presign": True})
    assert r.status_code == 409 and "no presigned URLs" in r.json()["detail"]
    assert api.get(f"/v1/jobs/{job['id']}/checkpoint").content == b"ckpt"


def test_an_idempotency_key_makes_a_retried_request_create_once(api, style_id):
    body = {"style_id": style_id, "steps": 3}
    first = api.post("/v1/jobs", json=body, headers={"Idempotency-Key": "order-1"})
    again = api.post("/v1/jobs", json=body, headers={"Idempotency-Key": "order-1"})
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"] and again.headers["idempotent-replayed"] == "true"
    assert len(api.get("/v1/jobs").json()) == 1
    other = api.post("/v1/jobs", json={**body, "steps": 4}, headers={"Idempotency-Key": "order-1"})
    assert other.status_code == 409 and "used with another request" in other.json()["detail"]
    fresh = api.post("/v1/jobs", json=body, headers={"Idempotency-Key": "order-2"})
    assert fresh.status_code == 201 and fresh.json()["id"] != first.json()["id"]
    too_long = api.post("/v1/jobs", json=body, headers={"Idempotency-Key": "k" * 256})
    assert too_long.status_code == 400 and "Idempotency-Key" in too_long.json()["detail"]
    # Uploads too: the same file twice under one key is one style.
    files = {"file": ("s.png", png(), "image/png")}
    a = api.post("/v1/styles", files=files, headers={"Idempotency-Key": "style-1"})
    b = api.post("/v1/styles", files=files, headers={"Idempotency-Key": "style-1"})
    assert a.status_code == 201 and a.json() == b.json()
    assert len(api.get("/v1/styles").json()) == 2  # style_id's and this one


def test_styles_and_content_sets_are_listed_and_deleted_unless_a_job_uses_them(api, style_id):
    (style,) = api.get("/v1/styles").json()
    assert style["id"] == style_id and (style["width"], style["height"], style["name"]) == (32, 32, "s.png")
    content = api.post("/v1/content-sets", files=[("files", ("a.png", png(), "image/png"))]).json()
    assert [c["id"] for c in api.get("/v1/content-sets").json()] == [content["id"]]
    assert api.get("/v1/content-sets").json()[0]["count"] == 1

    job = api.post("/v1/jobs", json={"style_id": style_id, "content_set_id": content["id"], "steps": 3}).json()
    for path in (f"/v1/styles/{style_id}", f"/v1/content-sets/{content['id']}"):
        r = api.delete(path)
        assert r.status_code == 409 and job["id"] in r.json()["detail"], r.text
    api.post(f"/v1/jobs/{job['id']}/cancel")  # the job is over: its inputs may go
    assert api.delete(f"/v1/styles/{style_id}").status_code == 204
    assert api.delete(f"/v1/content-sets/{content['id']}").status_code == 204
    assert api.get("/v1/styles").json() == [] and api.get("/v1/content-sets").json() == []
    assert api.get(f"/v1/jobs/{job['id']}").status_code == 200
    r = api.post("/v1/jobs", json={"style_id": style_id, "steps": 3})
    assert r.status_code == 404 and "no style" in r.json()["detail"]
    assert api.delete(f"/v1/styles/{style_id}").status_code == 404
    assert api.delete("/v1/content-sets/nothex").status_code == 404


def metric(api, line_start: str) -> float:
    text = api.get("/metrics").text
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start + " ")]
    assert len(values) == 1, (line_start, text)
    return values[0]


def test_metrics_are_scraped_from_the_records_the_broker_and_the_api(api, style_id):
    assert api.get("/metrics").headers["content-type"].startswith("text/plain")
    jobs = [api.post("/v1/jobs", json={"style_id": style_id, "steps": 3}).json() for _ in range(3)]
    api.post(f"/v1/jobs/{jobs[0]['id']}/cancel")
    assert metric(api, 'checkerless_jobs{state="queued"}') == 2
    assert metric(api, 'checkerless_jobs_ended_total{state="cancelled"}') == 1
    assert metric(api, 'checkerless_queue_depth{queue="train"}') == 3  # no worker consumes this broker
    assert metric(api, 'checkerless_stylize_seconds_count') == 0
    api.post("/v1/styles", files={"file": ("s.png", b"not an image", "image/png")})
    api.post("/v1/styles", files={"file": ("s.png", b"x" * 300_000, "image/png")})
    api.post("/v1/content-sets", files=[("files", ("a.png", png(), "image/png")), ("files", ("b.txt", b"hi", "text/plain"))])
    assert metric(api, 'checkerless_uploads_refused_total{reason="bad_image"}') == 1
    assert metric(api, 'checkerless_uploads_refused_total{reason="body_too_large"}') == 1
    assert metric(api, 'checkerless_uploads_refused_total{reason="skipped_file"}') == 1


def test_quotas_are_429_with_retry_after_and_say_which_limit(settings, style_id, api):
    store, token = api.app.state.services.store, api.headers["X-API-Key"]
    tight = settings.model_copy(update={"quota_active_jobs": 2, "quota_training_pixels": 3 * 1 * 32 * 32 * 3})
    with client_for(tight, store=store, token=token) as c:
        small = {"style_id": style_id, "steps": 3, "batch": 1, "size": 32}  # 3 x 1 x 32^2 pixel-steps each
        first = c.post("/v1/jobs", json=small).json()
        assert c.post("/v1/jobs", json=small).status_code == 201
        r = c.post("/v1/jobs", json=small)
        assert r.status_code == 429 and "at most 2 unfinished jobs" in r.json()["detail"] and r.headers["retry-after"]
        r = c.post("/v1/experiments", json={**small, "variants": ["deconv", "subpixel"]})
        assert r.status_code == 429 and "unfinished jobs" in r.json()["detail"]
        c.post(f"/v1/jobs/{first['id']}/cancel")  # one ends: room for one more job, but not for more work
        assert c.post("/v1/jobs", json=small).status_code == 201
        c.post(f"/v1/jobs/{first['id']}/cancel")
        for j in c.get("/v1/jobs").json():
            c.post(f"/v1/jobs/{j['id']}/cancel")
        r = c.post("/v1/jobs", json=small)
        assert r.status_code == 429 and "training work is limited" in r.json()["detail"], r.text
        retry = int(r.headers["retry-after"])
        assert 0 < retry <= tight.quota_window_s + 60  # work is counted by minute (service/core/usage.py)
        assert len(c.get("/v1/jobs").json()) == 3  # nothing was made by the refused requests
    admin_token = api.app.state.services.keys.create(name="ops", admin=True)[1]
    with client_for(tight, store=store, token=admin_token) as c:
        assert c.post("/v1/jobs", json={"style_id": style_id, "steps": 3}).status_code == 201  # no limits


def test_a_full_storage_quota_refuses_new_uploads_and_jobs(settings, style_id, api):
    store, token = api.app.state.services.store, api.headers["X-API-Key"]
    used = api.app.state.services.stores.storage_used(api.app.state.services.keys.lookup(token).owner)
    assert used > 0  # the style uploaded by the fixture
    full = settings.model_copy(update={"quota_storage_bytes": used})
    with client_for(full, store=store, token=token) as c:
        for r in (c.post("/v1/styles", files={"file": ("s.png", png(), "image/png")}),
                  c.post("/v1/content-sets", files=[("files", ("a.png", png(), "image/png"))]),
                  c.post("/v1/jobs", json={"style_id": style_id, "steps": 3})):
            assert r.status_code == 429 and "storage is limited" in r.json()["detail"] and r.headers["retry-after"]
        assert c.delete(f"/v1/styles/{style_id}").status_code == 204  # deleting makes room
        assert c.post("/v1/styles", files={"file": ("s.png", png(), "image/png")}).status_code == 201


def test_storage_is_one_record_that_uploads_and_deletes_change_and_a_sweeper_measures(settings, style_id, api):
    """An owner's stored bytes are one record (service/core/usage.py): the API's uploads and
    deletes count at once, a worker's output at the next measurement, which one sweeper claims;
    and a submission reads the same number of store objects with 10 jobs or 300."""
    from service.core import usage
    from service.core.keys import Keys
    from workers.sweepers import measure_storage

    services = api.app.state.services
    stores, store, owner = services.stores, services.store, services.keys.lookup(api.headers["X-API-Key"]).owner
    assert usage.stored(stores, owner) == stores.storage_used(owner) > 0  # measured once: the style
    r = api.post("/v1/content-sets", files=[("files", ("a.png", png(64, 48), "image/png"))])
    assert r.status_code == 201, r.text
    assert usage.stored(stores, owner) == stores.storage_used(owner)  # the upload counted at once

    # A worker's output (as a job's checkpoint is written) counts at the next measurement.
    before = usage.stored(stores, owner)
    job_id = _record_jobs(services, owner, 1)[0]
    assert api.post(f"/v1/jobs/{job_id}/cancel").status_code == 202  # (final: it may be deleted)
    store.put_bytes(Keys.report(job_id), b"x" * 5000)
    assert measure_storage(settings, store) == [] and usage.stored(stores, owner) == before  # measured moments ago
    after = stores.storage_used(owner)
    assert after > before + 5000  # the output and the job's record
    fresh = settings.model_copy(update={"storage_measure_s": 1e-6})
    assert measure_storage(fresh, store) == [owner] and usage.stored(stores, owner) == after
    assert api.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert usage.stored(stores, owner) == before == stores.storage_used(owner)  # a delete counts at once

    # A submission's reads do not grow with the owner's jobs (they did: every record was read).
    counted = _count_reads(store)

    def reads_of_a_submission() -> int:
        counted["reads"] = 0
        r = api.post("/v1/jobs", json={"style_id": style_id, "steps": 3})
        assert r.status_code == 201, r.text
        assert api.post(f"/v1/jobs/{r.json()['id']}/cancel").status_code == 202
        return counted["reads"]

    _record_jobs(services, owner, 10)
    with_10 = reads_of_a_submission()
    _record_jobs(services, owner, 290)
    assert reads_of_a_submission() == with_10


def _count_reads(store) -> dict:
    """{"reads": n}, counting every read and listing of this store object from now on."""
    counted = {"reads": 0}
    for name in ("get_bytes", "get_versioned", "list", "list_page", "usage", "exists", "folders"):
        def counting(*a, _f=getattr(store, name), **k):
            counted["reads"] += 1
            return _f(*a, **k)
        setattr(store, name, counting)
    return counted


def test_a_scrape_reads_as_much_with_10_ended_jobs_as_with_300(api):
    """/metrics reads the unfinished jobs and the running totals (service/core/stores/totals.py),
    which a store from before them gets built from every record on the first scrape."""
    services = api.app.state.services
    owner, store = services.keys.lookup(api.headers["X-API-Key"]).owner, services.store

    def end(n: int) -> None:
        for job_id in _record_jobs(services, owner, n):
            services.stores.jobs.update(job_id, lambda r: r.move(JobState.cancelled))

    end(10)
    store.delete(Keys.jobs_ended())  # as a store from before the totals: built from the records
    assert metric(api, 'checkerless_jobs_ended_total{state="cancelled"}') == 10
    counted = _count_reads(store)

    def reads_of_a_scrape() -> int:
        counted["reads"] = 0
        api.get("/metrics")
        return counted["reads"]

    with_10 = reads_of_a_scrape()
    end(290)
    assert reads_of_a_scrape() == with_10
    assert metric(api, 'checkerless_jobs_ended_total{state="cancelled"}') == 300
    assert metric(api, 'checkerless_jobs{state="queued"}') == 0

    # A stylisation that succeeds after the totals exist is counted as it ends.
    from service.core.keys import new_id
    from service.core.records import StylizeRecord

    assert metric(api, "checkerless_stylize_seconds_count") == 0
    request = services.stores.stylizations.create(StylizeRecord(id=new_id(), owner=owner, job_id=new_id(), inputs=[]))
    services.stores.stylizations.update(request.id, lambda r: (r.move(JobState.running), r.move(JobState.succeeded)))
    assert metric(api, "checkerless_stylize_seconds_count") == 1
    assert metric(api, 'checkerless_stylize_seconds_bucket{le="+Inf"}') == 1


def _record_jobs(services, owner: str, n: int) -> list[str]:
    """Jobs written straight through the job core (no queue, no quota): ids, newest first."""
    from datetime import timedelta

    from service.core.keys import new_id
    from service.core.records import JobRecord, now

    base = now()
    return [services.stores.jobs.create(JobRecord(id=new_id(), owner=owner, config={"decoder": "deconv", "steps": 3},
                                                  style_id=new_id(), steps=3, created_at=base - timedelta(seconds=i))).id
            for i in range(n)]


def _follow(c: TestClient, url: str) -> list[list[str]]:
    """The ids of each page, following Link rel="next" to the last page."""
    pages = []
    while True:
        r = c.get(url)
        assert r.status_code == 200, r.text
        pages.append([x["id"] for x in r.json()])
        if "x-next-cursor" not in r.headers:
            assert "link" not in r.headers
            return pages
        link = r.headers["link"]
        assert link.endswith('>; rel="next"') and f"cursor={r.headers['x-next-cursor']}" in link
        url = link[1:link.index(">")]


def test_jobs_and_experiments_are_listed_a_page_at_a_time(settings, api):
    from checkerless_client import Client

    from service.core.keys import new_id
    from service.core.records import ExperimentRecord

    services, token = api.app.state.services, api.headers["X-API-Key"]
    owner = services.keys.lookup(token).owner
    ids = _record_jobs(services, owner, 7)
    pages = _follow(api, "/v1/jobs?limit=3")
    assert [len(p) for p in pages] == [3, 3, 1] and [i for p in pages for i in p] == ids
    assert _follow(api, "/v1/jobs") == [ids]  # the default page holds them all: no cursor
    assert _follow(api, "/v1/jobs?limit=7") == [ids]
    # The client library (the CLI's `jobs list`): one page and its cursor, or every page by their Links.
    client = Client(http=api, key=token)
    first = client.jobs_page(limit=3)
    assert [j.id for j in first.items] == ids[:3] and first.next_cursor == api.get("/v1/jobs?limit=3").headers["x-next-cursor"]
    assert [j.id for j in client.jobs(limit=3)] == ids

    for limit, fragment in ((0, "greater than or equal to 1"), (1001, "less than or equal to 1000"), ("x", "integer")):
        r = api.get("/v1/jobs", params={"limit": limit})
        assert r.status_code == 422 and r.json()["detail"].startswith("limit: ") and fragment in r.json()["detail"], r.text
    for cursor in ("bogus", "../../keys", "0" * 17 + "-" + "a" * 31):
        for path in ("/v1/jobs", "/v1/experiments"):
            r = api.get(path, params={"cursor": cursor})
            assert r.status_code == 400 and "cursor" in r.json()["detail"] and "not one this server gave" in r.json()["detail"]

    # Another owner sees none of them on any page; an admin sees them (and its own none).
    with client_for(settings, store=services.store) as other:
        assert _follow(other, "/v1/jobs?limit=2") == [[]]
        cursor = api.get("/v1/jobs?limit=2").headers["x-next-cursor"]  # A's cursor, in B's hands
        assert other.get("/v1/jobs", params={"cursor": cursor}).json() == []
    admin = services.keys.create(name="ops", admin=True)[1]
    with client_for(settings, store=services.store, token=admin) as c:
        assert [i for p in _follow(c, "/v1/jobs?limit=4") for i in p] == ids

    exps = []
    for i in range(3):
        exp = ExperimentRecord(id=new_id(), owner=owner, style_id=new_id(), settings={},
                               variants=[{"decoder": "deconv", "job_id": ids[2 * i]},
                                         {"decoder": "subpixel", "job_id": ids[2 * i + 1]}])
        exps.insert(0, services.stores.experiments.create(exp).id)
    pages = _follow(api, "/v1/experiments?limit=2")
    assert [len(p) for p in pages] == [2, 1] and [i for p in pages for i in p] == exps
    assert api.get("/v1/experiments?limit=1").json()[0] | {"created_at": None} == {
        "id": exps[0], "created_at": None, "state": "running", "variants": ["deconv", "subpixel"], "settings": {},
        "seeds": 1}


def test_the_app_indexes_records_written_before_the_index_when_it_starts(settings):
    from service.core.keys import Keys, new_id
    from service.core.records import JobRecord
    from service.core.storage import LocalStore

    store = LocalStore(settings.data_dir / "store")
    owner = new_id()
    old = JobRecord(id=new_id(), owner=owner, config={"decoder": "deconv", "steps": 3}, style_id=new_id(), steps=3)
    store.put_bytes(Keys.job(old.id), old.model_dump_json().encode())  # as an older version wrote it
    app = create_app(settings, store=store)
    assert store.exists(Keys.index_version())
    _, token = app.state.services.keys.create(name="old", owner=owner)
    with TestClient(app, headers={"X-API-Key": token}) as c:
        assert [j["id"] for j in c.get("/v1/jobs").json()] == [old.id]
