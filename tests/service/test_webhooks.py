"""Webhooks: refused URLs (no server-side request forgery), signed deliveries to a local
receiver, retries with backoff, one id per event, and giving up. Local store; the API through
TestClient."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from service.api.main import create_app
from service.core import webhooks
from service.core.auth import KeyStore
from service.core.errors import NotFound
from service.core.stores import Stores
from service.core.keys import new_id
from service.core.records import JobRecord, JobState
from service.core.settings import Settings
from service.core.storage import LocalStore
from service.cli.webhook_receiver import Receiver


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.mark.parametrize("url, fragment", [
    ("http://127.0.0.1:9/x", "127.0.0.1, which is not a public address"),
    ("http://localhost/x", "not a public address"),
    ("http://10.1.2.3/x", "not a public address"),
    ("http://169.254.169.254/latest/meta-data", "not a public address"),  # cloud metadata
    ("http://[::1]/x", "not a public address"),
    ("http://0.0.0.0/x", "not a public address"),
    # IPv6 forms that lead to private IPv4 addresses
    ("http://[::a9fe:a9fe]/x", "IPv4 169.254.169.254"),  # IPv4-compatible
    ("http://[::ffff:0:a00:1]/x", "IPv4 10.0.0.1"),  # IPv4-translated
    ("http://[64:ff9b::a9fe:a9fe]/x", "IPv4 169.254.169.254"),  # NAT64
    ("http://[64:ff9b:1::7f00:1]/x", "IPv4 127.0.0.1"),  # NAT64, local use
    ("http://[2002:a9fe:a9fe::]/x", "IPv4 169.254.169.254"),  # 6to4
    ("http://[::ffff:127.0.0.1]/x", "not a public address"),  # IPv4-mapped
    ("http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/x", "not a public address"),  # Teredo, client 10.0.0.1
    ("ftp://example.com/x", "http or https"),
    ("not a url", "http or https"),
])
def test_webhook_urls_to_private_addresses_are_refused(tmp_path, url, fragment):
    app = create_app(Settings(data_dir=tmp_path / "data"))
    _, token = app.state.services.keys.create(name="t")
    with TestClient(app, headers={"X-API-Key": token}) as api:
        from tests.service.test_api import png

        style = api.post("/v1/styles", files={"file": ("s.png", png(), "image/png")}).json()["id"]
        r = api.post("/v1/jobs", json={"style_id": style, "webhook_url": url})
        assert r.status_code == 422 and fragment in r.json()["detail"], r.text
        assert api.get("/v1/jobs").json() == []
    assert webhooks.check_url("http://93.184.216.34/hook", allow_private=False)  # a public address passes
    assert webhooks.check_url("http://[64:ff9b::5db8:d822]/hook", allow_private=False)  # NAT64 to a public one


class Clock:
    """The delivery loop's time, moved by the test: no test waits on the real one."""

    def __init__(self):
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def deliver(store, clock=time.time, **kw):
    return webhooks.deliver_due(store, allow_private=True, attempts=kw.get("attempts", 3), retry_base_s=0.2,
                                clock=clock)


def test_state_changes_are_delivered_signed_retried_and_given_up(tmp_path, receiver):
    store = LocalStore(tmp_path / "store")
    stores, keys = Stores(store), KeyStore(store)
    key, _ = keys.create(name="alice")
    receiver.statuses = [500]  # the first delivery fails once
    job = stores.jobs.create(JobRecord(id=new_id(), owner=key.owner, config={"steps": 2}, style_id=new_id(), steps=2,
                                       webhook_url=receiver.url))
    stores.jobs.start_attempt(job.id, worker="w", max_attempts=3, stale_after_s=5)
    stores.jobs.end_attempt(job.id, 1, JobState.succeeded)
    clock = Clock()
    assert deliver(store, clock) == {"delivered": 2, "retry": 1, "failed": 0}  # queued: 500, running, succeeded
    assert deliver(store, clock) == {"delivered": 0, "retry": 0, "failed": 0}  # not due yet
    clock.now += 0.3  # past the first backoff (0.2 s)
    assert deliver(store, clock) == {"delivered": 1, "retry": 0, "failed": 0}
    assert store.list("webhooks/outbox") == []

    secret = webhooks.owner_secret(store, key.owner)
    events = [json.loads(r["body"]) for r in receiver.received]
    for r in receiver.received:
        assert webhooks.verify(secret, r["headers"][webhooks.SIGNATURE], r["body"])
        assert not webhooks.verify("another secret", r["headers"][webhooks.SIGNATURE], r["body"])
        assert r["headers"][webhooks.DELIVERY] == json.loads(r["body"])["id"]
    # the retried event came twice, with one id: a receiver drops the duplicate by it
    assert [e["state"] for e in events] == ["queued", "running", "succeeded", "queued"]
    assert events[0]["id"] == events[3]["id"] and len({e["id"] for e in events}) == 3
    assert all(e["job_id"] == job.id and e["type"] == "job.state" for e in events)

    # A receiver that is always down: given up after the attempts, kept under webhooks/failed.
    receiver.statuses = [503] * 10
    stores.jobs.request_cancel(stores.jobs.create(JobRecord(id=new_id(), owner=key.owner, config={"steps": 1}, style_id=new_id(),
                                                            steps=1, webhook_url=receiver.url)).id)
    for _ in range(6):
        deliver(store, clock, attempts=2)
        clock.now += 0.25
    failed = [json.loads(store.get_bytes(k)) for k in store.list("webhooks/failed")]
    assert len(failed) == 2 and all(f["attempts"] == 2 and f["last_error"] == "HTTP 503" for f in failed)
    assert store.list("webhooks/outbox") == []
    assert webhooks.delivery_totals(store) == {"delivered": 3, "retry": 3, "failed": 2}
    # ... and /metrics says so
    app = create_app(Settings(data_dir=tmp_path), store=store)
    with TestClient(app) as api:
        scraped = api.get("/metrics").text
    assert 'checkerless_webhook_deliveries_total{result="delivered"} 3.0' in scraped
    assert 'checkerless_webhook_deliveries_total{result="failed"} 2.0' in scraped
    assert 'checkerless_webhooks{state="failed"} 2.0' in scraped


def test_an_old_or_forged_signature_is_refused():
    body = b'{"a": 1}'
    old = webhooks.sign("s", int(time.time()) - 3600, body)
    assert not webhooks.verify("s", old, body)
    assert not webhooks.verify("s", "t=1,v1=00", body) and not webhooks.verify("s", "garbage", body)
    assert webhooks.verify("s", webhooks.sign("s", int(time.time()), body), body)


class Crash(BaseException):
    """The process dies here (no handler of ours catches it, as none outlives a kill)."""


class CrashingStore(LocalStore):
    """A local store whose `at`-th write (put, conditional put, delete) never happens: the
    process dies just before it."""

    def __init__(self, root, at: int | None):
        super().__init__(root)
        self.at, self.writes = at, 0

    def _write(self) -> None:
        self.writes += 1
        if self.writes == self.at:
            raise Crash

    def put_bytes(self, *args, **kwargs):
        self._write()
        return super().put_bytes(*args, **kwargs)

    def put_if(self, *args, **kwargs):
        self._write()
        return super().put_if(*args, **kwargs)

    def delete(self, *args, **kwargs):
        self._write()
        return super().delete(*args, **kwargs)


def _lifecycle(stores: Stores, job: JobRecord) -> None:
    """A job's three changes, each done only if the record shows it is not done yet (what a
    restarted API or worker does: a retried submit, a redelivery, the supervisor's retry)."""
    try:
        stores.jobs.get(job.id)
    except NotFound:
        stores.jobs.create(job.model_copy(deep=True))
    if stores.jobs.get(job.id).state == JobState.queued:
        stores.jobs.start_attempt(job.id, worker="w", max_attempts=3, stale_after_s=5)
    if stores.jobs.get(job.id).state == JobState.running:
        stores.jobs.end_attempt(job.id, 1, JobState.succeeded)


def test_a_crash_between_any_two_writes_loses_no_event_and_sends_none_twice(tmp_path, receiver):
    owner = new_id()

    def new_job() -> JobRecord:
        return JobRecord(id=new_id(), owner=owner, config={"steps": 2}, style_id=new_id(), steps=2,
                         webhook_url=receiver.url)

    counting = CrashingStore(tmp_path / "count", at=None)
    _lifecycle(Stores(counting), new_job())
    assert counting.writes > 10
    for at in range(1, counting.writes + 1):
        root = tmp_path / f"crash-{at}"
        job = new_job()
        with pytest.raises(Crash):
            _lifecycle(Stores(CrashingStore(root, at=at)), job)
        restarted = Stores(LocalStore(root))  # the next process, on what the store holds
        restarted.announcements.flush_pending(settle_s=0)
        _lifecycle(restarted, job)
        restarted.announcements.flush_pending(settle_s=0)
        receiver.received.clear()
        deliver(restarted.store)
        events = {}
        for r in receiver.received:
            e = json.loads(r["body"])
            events[e["id"]] = e  # a receiver drops duplicates by the event's id
        states = [e["state"] for e in sorted(events.values(), key=lambda e: e["created_at"])]
        assert states == ["queued", "running", "succeeded"], (at, states)
        assert restarted.store.list("webhooks/pending") == [] and restarted.jobs.get(job.id).pending_events == []
