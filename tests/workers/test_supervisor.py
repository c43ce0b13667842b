"""The supervisor's decisions that need no child process, on a local store; the sweeper's
with the real Redis as its broker."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import redis

from service.core.stores import Stores
from service.core.keys import new_id
from service.core.queue import STYLIZE_QUEUE, STYLIZE_TASK, TRAIN_QUEUE, TRAIN_TASK, JobQueue, make_celery
from service.core.records import JobRecord, JobState, StylizeRecord, now
from service.core.settings import Settings
from service.core.storage import LocalStore
from tests.conftest import service_redis_db
from workers.drain import drain_marker
from workers.sweepers import sweep
from workers.train_task import run_train_job


def setup(tmp_path):
    settings = Settings(data_dir=tmp_path, stale_after_s=4, heartbeat_s=0.5)
    store = LocalStore(tmp_path / "store")
    stores = Stores(store)
    job = stores.jobs.create(JobRecord(id=new_id(), config={"decoder": "deconv", "steps": 10}, style_id=new_id(), steps=10))
    return settings, store, stores, job


def test_a_job_whose_style_is_gone_fails_with_the_reason_instead_of_retrying(tmp_path):
    settings, store, stores, job = setup(tmp_path)  # its style was never stored
    sent = []
    assert run_train_job(settings, store, job.id, worker="w", requeue=sent.append) == JobState.failed
    record = stores.jobs.get(job.id)
    assert "gone from the store" in record.error and f"styles/{job.style_id}" in record.error
    assert sent == [] and record.attempts == 1 and not (settings.work_dir / job.id).exists()


def test_a_worker_shutting_down_hands_new_jobs_back_untouched(tmp_path):
    settings, store, stores, job = setup(tmp_path)
    marker = drain_marker(settings, os.getppid())  # as the worker's main process writes it on SIGTERM
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    sent = []
    assert run_train_job(settings, store, job.id, worker="w", requeue=sent.append) is None
    assert sent == [job.id]
    record = stores.jobs.get(job.id)
    assert record.state == JobState.queued and record.attempts == 0 and record.history == []


def test_an_attempt_removes_its_own_folder_and_not_the_one_that_took_over(tmp_path):
    # Workers on one machine share the scratch folder: an attempt that lost its lease must not
    # delete the folder of the attempt (on another worker there) that took the job over.
    settings, store, stores, job = setup(tmp_path)
    taken_over = settings.work_dir / job.id / "attempt-2"
    taken_over.mkdir(parents=True)
    (taken_over / "spec.json").write_text("{}")
    assert run_train_job(settings, store, job.id, worker="w", requeue=[].append) == JobState.failed  # style gone
    assert (taken_over / "spec.json").exists() and not (settings.work_dir / job.id / "attempt-1").exists()


def test_a_requeue_whose_publish_was_refused_is_sent_again_once_the_queue_is_empty(tmp_path):
    # The real Redis (a database of this test worker's own) as the broker, and a broker nobody
    # answers at as the one that refuses the first publish.
    settings, store, stores, job = setup(tmp_path)
    settings = settings.model_copy(update={"resend_queued_after_s": 60})
    url = f"redis://127.0.0.1:6379/{service_redis_db()}"
    redis.Redis.from_url(url).flushdb()
    broker, refusing = (JobQueue(make_celery(Settings(broker_url=u))) for u in (url, "redis://127.0.0.1:1/0"))
    stores.jobs.start_attempt(job.id, worker="w", max_attempts=3, stale_after_s=4)
    stores.jobs.update(job.id, lambda r: setattr(r, "heartbeat_at", now() - timedelta(minutes=1)))  # its worker died

    def sweep_with(queue: JobQueue) -> list[str]:
        return sweep(settings, store, send_train=lambda i: queue.send(TRAIN_TASK, i),
                     train_queue_empty=lambda: broker.depths()[TRAIN_QUEUE] == 0)

    assert sweep_with(refusing) == []  # requeued, and its message refused: queued with none
    assert stores.jobs.get(job.id).state == JobState.queued and broker.depths()[TRAIN_QUEUE] == 0
    assert sweep_with(broker) == []  # too soon to call the message lost

    def later(job_id: str) -> None:  # as if 61 s had passed since its message was sent
        def back(r: JobRecord) -> None:
            for field in ("created_at", "requeued_at", "resent_at"):
                if getattr(r, field) is not None:
                    setattr(r, field, getattr(r, field) - timedelta(seconds=61))
        stores.jobs.update(job_id, back)

    later(job.id)
    assert sweep_with(broker) == [job.id] and broker.depths()[TRAIN_QUEUE] == 1
    assert sweep_with(broker) == []  # sent again just now

    # A queue that holds messages is a queue that is long, not one that lost them: nothing is sent.
    other = stores.jobs.create(JobRecord(id=new_id(), config={"decoder": "deconv", "steps": 10}, style_id=new_id(), steps=10))
    later(other.id)
    assert sweep_with(broker) == [] and broker.depths()[TRAIN_QUEUE] == 1
    redis.Redis.from_url(url).flushdb()  # the broker lost its data: both are sent again
    later(job.id)
    assert sorted(sweep_with(broker)) == sorted([job.id, other.id]) and broker.depths()[TRAIN_QUEUE] == 2
    redis.Redis.from_url(url).flushdb()


def test_a_stylisation_whose_message_was_lost_is_sent_again_once_its_queue_is_empty(tmp_path):
    """As for jobs: a stylisation queued past resend_queued_after_s while the stylise queue is
    empty (its requeue's publish refused, the broker's data lost, a held video message whose
    worker died) is sent again, by one sweeper, once."""
    settings, store, stores, _ = setup(tmp_path)
    settings = settings.model_copy(update={"resend_queued_after_s": 60})
    url = f"redis://127.0.0.1:6379/{service_redis_db()}"
    redis.Redis.from_url(url).flushdb()
    broker = JobQueue(make_celery(Settings(broker_url=url)))
    request = stores.stylizations.create(StylizeRecord(id=new_id(), job_id=new_id(), inputs=[]))

    def sweep_now() -> list[str]:
        return sweep(settings, store, send_stylize=lambda i: broker.send(STYLIZE_TASK, i),
                     stylize_queue_empty=lambda: broker.depths()[STYLIZE_QUEUE] == 0)

    assert sweep_now() == []  # too soon to call its message lost
    stores.stylizations.update(request.id, lambda r: setattr(r, "created_at", r.created_at - timedelta(seconds=61)))
    assert sweep_now() == [request.id] and broker.depths()[STYLIZE_QUEUE] == 1
    assert sweep_now() == []  # sent again just now (and its queue is no longer empty)
    redis.Redis.from_url(url).flushdb()  # the broker lost it again: not before another 60 s
    assert sweep_now() == []
    stores.stylizations.update(request.id, lambda r: setattr(r, "resent_at", r.resent_at - timedelta(seconds=61)))
    assert sweep_now() == [request.id]
    stores.stylizations.update(request.id, lambda r: (r.move(JobState.running), r.move(JobState.succeeded)))
    redis.Redis.from_url(url).flushdb()
    stores.stylizations.update(request.id, lambda r: setattr(r, "resent_at", r.resent_at - timedelta(seconds=61)))
    assert sweep_now() == []  # ended: nothing to send
    redis.Redis.from_url(url).flushdb()


def test_a_raised_pixel_limit_lets_a_larger_style_through_the_api_and_the_worker(tmp_path):
    # One setting for every reader of images: the API's check, and the training child's own.
    import io

    from fastapi.testclient import TestClient
    from PIL import Image

    from models.images import MAX_PIXELS
    from service.api.main import create_app

    w, h = 6500, 6400
    assert w * h > MAX_PIXELS
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 120, 40)).save(buf, format="PNG")
    url = f"redis://127.0.0.1:6379/{service_redis_db()}"
    settings = Settings(data_dir=tmp_path / "data", broker_url=url, probe_size=48, export_formats=[])
    for limit, status in ((None, 422), (42_000_000, 201)):
        s = settings.model_copy(update={"max_pixels": limit}) if limit else settings
        app = create_app(s)
        with TestClient(app, headers={"X-API-Key": app.state.services.keys.create(name="t")[1]}) as api:
            r = api.post("/v1/styles", files={"file": ("big.png", buf.getvalue(), "image/png")})
            assert r.status_code == status, r.text
            if limit is None:
                assert f"the limit is {MAX_PIXELS}" in r.json()["detail"]
                continue
            job = api.post("/v1/jobs", json={"style_id": r.json()["id"], "steps": 1, "size": 32, "batch": 1}).json()
        store = app.state.services.store
        state = run_train_job(s, store, job["id"], worker="w", requeue=[].append)
        assert state == JobState.succeeded, Stores(store).jobs.get(job["id"]).error
    redis.Redis.from_url(url).flushdb()


def _uploads(tmp_path, store, stores, job):
    """upload(attempt, data): one checkpoint of that attempt through its CheckpointUploader, named
    in the record as the supervisor names it."""
    import time

    from service.core.keys import Keys
    from workers.checkpoint_upload import CheckpointUploader
    from workers.train_task import _name_checkpoint

    def upload(attempt: int, data: bytes) -> None:
        folder = tmp_path / f"attempt-{attempt}"
        folder.mkdir(exist_ok=True)
        (folder / "last.ckpt").write_bytes(data)
        up = CheckpointUploader(store, Keys.attempt_checkpoint(job.id, attempt), folder,
                                on_stored=lambda: _name_checkpoint(store, stores, job.id, attempt))
        up.offer(folder / "last.ckpt")
        deadline = time.monotonic() + 30
        while not up.idle() and time.monotonic() < deadline:  # the upload thread's own work, not a clock
            time.sleep(0.01)
        up.close()

    return upload


def _taken_over_after_one_checkpoint(tmp_path):
    """Attempt 1 stores its checkpoint (step 10), which the record names; then its worker stalls,
    the job is requeued and attempt 2 begins. (settings, store, stores, job, upload)."""
    from service.core.keys import Keys

    settings, store, stores, job = setup(tmp_path)
    store.put_bytes(Keys.style(job.style_id), b"style")
    upload = _uploads(tmp_path, store, stores, job)
    stores.jobs.start_attempt(job.id, worker="w1", max_attempts=3, stale_after_s=4)
    upload(1, b"attempt 1, step 10")
    assert stores.jobs.get(job.id).checkpoint == Keys.attempt_checkpoint(job.id, 1)
    stores.jobs.update(job.id, lambda r: setattr(r, "heartbeat_at", now() - timedelta(minutes=1)))  # worker 1 stalls
    assert stores.jobs.requeue_if_stale(job.id, stale_after_s=4)
    stores.jobs.start_attempt(job.id, worker="w2", max_attempts=3, stale_after_s=4)
    return settings, store, stores, job, upload


def test_a_late_checkpoint_upload_of_an_attempt_that_lost_the_job_is_never_resumed(tmp_path):
    from service.core.keys import Keys
    from workers.train_task import _prepare

    settings, store, stores, job, upload = _taken_over_after_one_checkpoint(tmp_path)  # attempt 2 resumes from step 10...
    upload(2, b"attempt 2, step 20")  # ...and stores step 20; attempt 1's is gone
    assert not store.exists(Keys.attempt_checkpoint(job.id, 1))
    # Attempt 1's upload in flight when it lost the job lands now, after attempt 2's.
    (tmp_path / "attempt-1").rename(tmp_path / "attempt-1-before")
    upload(1, b"attempt 1, step 15")
    record = stores.jobs.get(job.id)
    assert record.checkpoint == Keys.attempt_checkpoint(job.id, 2)
    assert not store.exists(Keys.attempt_checkpoint(job.id, 1))  # dropped by the attempt that lost the job
    spec = _prepare(store, record, settings, tmp_path / "attempt-3")
    assert open(spec.resume, "rb").read() == b"attempt 2, step 20"


def test_a_late_upload_landing_before_the_next_attempt_stores_its_own_keeps_the_checkpoint_it_resumes_from(tmp_path):
    # Attempt 1's checkpoint is the job's; attempt 1 loses the job with another upload in flight
    # (its store was down: the upload retried until it came back), and that upload lands after
    # attempt 2 began but before attempt 2 stored a checkpoint of its own. It overwrote the very
    # object the record names: dropping it as a fenced attempt's upload (as before) deleted the
    # checkpoint attempt 2 resumes from, and the job trained again from step 0 (seen in CI).
    from service.core.keys import Keys
    from workers.train_task import _prepare

    settings, store, stores, job, upload = _taken_over_after_one_checkpoint(tmp_path)
    upload(1, b"attempt 1, step 15")  # the late one: its naming finds the job no longer attempt 1's
    record = stores.jobs.get(job.id)
    assert record.checkpoint == Keys.attempt_checkpoint(job.id, 1) and store.exists(record.checkpoint)
    spec = _prepare(store, record, settings, tmp_path / "attempt-2-run")
    assert spec.resume is not None and Path(spec.resume).read_bytes().startswith(b"attempt 1")
    upload(2, b"attempt 2, step 20")  # attempt 2's own replaces it, and attempt 1's object goes
    assert stores.jobs.get(job.id).checkpoint == Keys.attempt_checkpoint(job.id, 2)
    assert not store.exists(Keys.attempt_checkpoint(job.id, 1))
