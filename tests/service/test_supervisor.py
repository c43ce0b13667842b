"""The supervisor's bookkeeping, on a local store (no broker needed for these paths)."""

from datetime import timedelta

from service.config import Settings
from service.jobs import JobRecord, JobState, JobStore, new_id, now
from service.storage import LocalStore
from workers.supervisor import requeue_stale_jobs, run_train_job


def setup(tmp_path, **record):
    settings = Settings(data_dir=tmp_path, max_attempts=3, stale_after_s=5)
    store = LocalStore(tmp_path / "store")
    jobs = JobStore(store)
    rec = jobs.create(JobRecord(id=new_id(), config={"decoder": "deconv", "steps": 10}, style_id=new_id(), steps=10,
                                **record))
    return settings, store, jobs, rec


def test_a_job_that_kills_its_worker_every_time_fails_with_the_reason(tmp_path):
    settings, store, jobs, rec = setup(tmp_path, state=JobState.running, attempts=3, step=7,
                                       heartbeat_at=now() - timedelta(minutes=5))
    assert run_train_job(settings, store, rec.id) == JobState.failed
    failed = jobs.get(rec.id)
    assert failed.attempts == 4 and "gave up after 3 attempts" in failed.error and "step 7" in failed.error
    assert rec.id not in jobs.active_ids()


def test_a_job_running_elsewhere_is_not_run_twice(tmp_path):
    settings, store, jobs, rec = setup(tmp_path, state=JobState.running, attempts=1, heartbeat_at=now())
    assert run_train_job(settings, store, rec.id) is None
    assert jobs.get(rec.id).attempts == 1


def test_a_cancelled_queued_job_never_starts(tmp_path):
    settings, store, jobs, rec = setup(tmp_path)
    jobs.request_cancel(rec.id)
    assert run_train_job(settings, store, rec.id) == JobState.cancelled
    assert jobs.get(rec.id).attempts == 0


def test_only_stale_running_jobs_are_requeued_once_per_period(tmp_path):
    settings, store, jobs, stale = setup(tmp_path, state=JobState.running, heartbeat_at=now() - timedelta(minutes=1))
    fresh = jobs.create(JobRecord(id=new_id(), config={}, style_id=new_id(), steps=1, state=JobState.running,
                                  heartbeat_at=now()))
    sent = []
    assert requeue_stale_jobs(settings, store, sent.append) == [stale.id]
    assert requeue_stale_jobs(settings, store, sent.append) == []  # not again until the new attempt had time
    assert sent == [stale.id] and fresh.id not in sent
