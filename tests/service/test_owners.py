"""Owners and API keys: no route answers without a key; another owner's resource is a 404
through every route (the OpenAPI schema is walked, so a new route cannot be forgotten); an
admin key sees everyone's. TestClient on the local store, the machine's Redis as the broker."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient
from PIL import Image

from service.api.main import create_app
from service.core.keys import Keys
from service.core.records import JobState
from service.core.settings import Settings

from tests.conftest import service_redis_db

REDIS_DB = service_redis_db()
OPEN = {("/v1/health", "get"), ("/v1/ready", "get"), ("/v1/decoders", "get"), ("/v1/downsamples", "get"),
        ("/v1/builtin-styles", "get"),
        ("/v1/builtin-styles/{name}/thumbnail", "get")}
CREATE = {("/v1/styles", "post"), ("/v1/content-sets", "post"), ("/v1/content-sets/archive", "post"),
          ("/v1/content-sets/register", "post"), ("/v1/jobs", "post"), ("/v1/experiments", "post")}
LISTS = {("/v1/jobs", "get"), ("/v1/experiments", "get"), ("/v1/styles", "get"), ("/v1/content-sets", "get"),
         ("/v1/webhook-secret", "get")}  # the caller's own


def png(seed: int = 0, size: int = 32) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def world(tmp_path):
    """Owner A with one of everything (a finished job with its files, an experiment, a
    stylisation), owner B with nothing, and an admin."""
    r = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    r.flushdb()
    app = create_app(Settings(data_dir=tmp_path / "data", broker_url=f"redis://127.0.0.1:6379/{REDIS_DB}"))
    services = app.state.services
    clients = {}
    for who, admin in (("a", False), ("b", False), ("admin", True)):
        _, token = services.keys.create(name=who, admin=admin)
        clients[who] = TestClient(app, headers={"X-API-Key": token})
    clients["nobody"] = TestClient(app)
    a = clients["a"]
    ids = {"style_id": a.post("/v1/styles", files={"file": ("s.png", png(), "image/png")}).json()["id"],
           "set_id": a.post("/v1/content-sets", files=[("files", ("c.png", png(1), "image/png"))]).json()["id"]}
    ids["job_id"] = a.post("/v1/jobs", json={"style_id": ids["style_id"], "steps": 2}).json()["id"]
    exp = a.post("/v1/experiments", json={"style_id": ids["style_id"], "variants": ["deconv", "resize-nearest"],
                                          "steps": 2}).json()
    ids["experiment_id"] = exp["id"]
    for job_id in [ids["job_id"], *(v["id"] for v in exp["variants"])]:
        _finish(services, job_id)  # as a worker would have
    ids["request_id"] = a.post(f"/v1/jobs/{ids['job_id']}/stylize", files=[("files", ("p.png", png(2), "image/png"))]).json()["id"]
    services.store.put_bytes(Keys.stylize_output(ids["request_id"], 0), png(3))
    services.stores.stylizations.update(ids["request_id"], lambda s: (s.move(JobState.running), setattr(
        s, "outputs", [Keys.stylize_output(ids["request_id"], 0)]), setattr(s, "sizes", [(32, 32)]),
        s.move(JobState.succeeded)))
    yield clients, ids, services
    for c in clients.values():
        c.close()
    r.flushdb()


def _finish(services, job_id: str) -> None:
    store = services.store
    for key in (Keys.checkpoint(job_id), Keys.preview(job_id), Keys.panel(job_id, "chelsea")):
        store.put_bytes(key, png(4))
    store.put_bytes(Keys.report(job_id), json.dumps({"ok": True}).encode())

    def done(r) -> None:
        r.move(JobState.running)
        r.attempts = 1
        r.outputs = {"checkpoint": Keys.checkpoint(job_id), "report": Keys.report(job_id),
                     "preview": Keys.preview(job_id)}
        r.panel = [{"name": "chelsea", "key": Keys.panel(job_id, "chelsea"), "width": 32, "height": 32,
                    "period2_db": -20.0, "period4_db": -20.0}]
        r.move(JobState.succeeded)

    services.stores.jobs.update(job_id, done)


def routes(client: TestClient) -> list[tuple[str, str]]:
    return [(path, method) for path, ops in client.get("/openapi.json").json()["paths"].items() for method in ops]



def fill(path: str, ids: dict) -> str:
    def one(m: re.Match) -> str:
        param = m.group(1)
        if param in ids:
            return ids[param]
        if param == "name" and path.startswith("/v1/builtin-styles/"):
            return "ihc"
        if param == "name":
            return "chelsea" if ("/panel/" in path or "/experiments/" in path) else "checkpoint"
        if param == "index":
            return "0"
        raise AssertionError(f"{path}: no value for {{{param}}}; teach this test the new route")
    return re.sub(r"\{(\w+)\}", one, path)


def call(client: TestClient, method: str, url: str):
    if method == "post" and url.endswith("/stylize-video"):
        return client.post(url, files=[("file", ("v.mp4", b"\x00\x00\x00\x08ftyp" + b"a video, as far as the API can tell",
                                                 "video/mp4"))])  # an MP4's first box: past the upload's sniff
    if method == "post" and url.endswith("/stylize"):
        return client.post(url, files=[("files", ("p.png", png(5), "image/png"))])
    return client.request(method.upper(), url)


def test_every_route_but_health_needs_a_key(world):
    clients, ids, services = world
    for path, method in routes(clients["a"]):
        r = call(clients["nobody"], method, fill(path, ids))
        if (path, method) in OPEN:
            assert r.status_code == 200, path
        else:
            assert r.status_code == 401 and "needs an API key" in r.json()["detail"], (method, path, r.text)
            assert r.headers["www-authenticate"] == "Bearer"
    for header in ({"X-API-Key": "ck_not-a-key"}, {"Authorization": "Bearer ck_not-a-key"}):
        r = clients["nobody"].get("/v1/jobs", headers=header)
        assert r.status_code == 401 and "unknown or revoked" in r.json()["detail"]


def test_another_owners_resources_are_404_through_every_route(world):
    clients, ids, services = world
    a, b = clients["a"], clients["b"]
    checked = []
    for path, method in routes(a):
        if (path, method) in OPEN | CREATE | LISTS:
            continue
        url = fill(path, ids)
        r = call(b, method, url)
        assert r.status_code == 404 and r.json()["detail"].startswith("no "), (method, path, r.status_code, r.text)
        if method != "delete":  # the owner reaches the same thing
            assert call(a, method, url).status_code in (200, 202, 409), (method, path)
        checked.append((method, path))
    assert len(checked) >= 15, checked  # every id-addressed route of today; new ones add to it
    # Creating with another owner's style or content set: as if they did not exist.
    r = b.post("/v1/jobs", json={"style_id": ids["style_id"]})
    assert r.status_code == 404 and "no style" in r.json()["detail"]
    r = b.post("/v1/experiments", json={"style_id": ids["style_id"], "variants": ["deconv", "subpixel"]})
    assert r.status_code == 404 and "no style" in r.json()["detail"]
    b_style = b.post("/v1/styles", files={"file": ("s.png", png(9), "image/png")}).json()["id"]
    r = b.post("/v1/jobs", json={"style_id": b_style, "content_set_id": ids["set_id"]})
    assert r.status_code == 404 and "no content set" in r.json()["detail"]
    # Lists hold only one's own; nothing of A's was touched by B's attempts.
    for path in ("/v1/jobs", "/v1/experiments", "/v1/styles", "/v1/content-sets"):
        seen = {x["id"] for x in b.get(path).json()}
        assert not seen & set(ids.values()), path
    assert a.get(f"/v1/jobs/{ids['job_id']}").json()["state"] == "succeeded"
    assert a.get(f"/v1/experiments/{ids['experiment_id']}").status_code == 200
    assert a.get(f"/v1/jobs/{ids['job_id']}/checkpoint").content == png(4)


def test_an_admin_sees_every_owner_and_a_revoked_key_stops_at_once(world):
    clients, ids, services = world
    admin = clients["admin"]
    assert admin.get(f"/v1/jobs/{ids['job_id']}").status_code == 200
    assert ids["job_id"] in {j["id"] for j in admin.get("/v1/jobs").json()}
    assert ids["style_id"] in {s["id"] for s in admin.get("/v1/styles").json()}
    scraped = clients["nobody"].get("/metrics").text  # aggregate counts only: open, like the health checks
    assert "checkerless_stylize_seconds_count 1.0" in scraped and 'checkerless_jobs_ended_total{state="succeeded"} 3.0' in scraped
    (a_key,) = [k for k in services.keys.list() if k.name == "a"]
    services.keys.revoke(a_key.id)
    r = clients["a"].get("/v1/jobs")
    assert r.status_code == 401 and "revoked" in r.json()["detail"]


def test_idempotency_keys_belong_to_their_caller(world):
    clients, ids, services = world
    b_style = clients["b"].post("/v1/styles", files={"file": ("s.png", png(9), "image/png")}).json()["id"]
    body_a = {"style_id": ids["style_id"], "steps": 2}
    first = clients["a"].post("/v1/jobs", json=body_a, headers={"Idempotency-Key": "same"})
    other = clients["b"].post("/v1/jobs", json={"style_id": b_style, "steps": 2}, headers={"Idempotency-Key": "same"})
    assert first.status_code == other.status_code == 201 and first.json()["id"] != other.json()["id"]


def test_an_idempotency_key_belongs_to_the_owner_whichever_header_carries_the_key(world):
    """The same owner resending a key as `Authorization: Bearer` (or with a second key of its
    own) gets the first answer, not a second job."""
    clients, ids, services = world
    token = clients["a"].headers["X-API-Key"]
    _, second = services.keys.create(name="a's second key", owner=services.keys.lookup(token).owner)
    body = {"style_id": ids["style_id"], "steps": 2}
    first = clients["a"].post("/v1/jobs", json=body, headers={"Idempotency-Key": "once"})
    as_bearer = clients["nobody"].post("/v1/jobs", json=body, headers={"Idempotency-Key": "once",
                                                                       "Authorization": f"Bearer {token}"})
    other_key = clients["nobody"].post("/v1/jobs", json=body, headers={"Idempotency-Key": "once", "X-API-Key": second})
    assert first.status_code == as_bearer.status_code == other_key.status_code == 201
    assert first.json()["id"] == as_bearer.json()["id"] == other_key.json()["id"]
    assert as_bearer.headers["idempotent-replayed"] == other_key.headers["idempotent-replayed"] == "true"
