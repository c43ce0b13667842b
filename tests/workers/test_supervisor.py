"""The supervisor's decisions that need no child process, on a local store."""

from __future__ import annotations

import os

from service.core.jobs import JobStore
from service.core.keys import new_id
from service.core.records import JobRecord, JobState
from service.core.settings import Settings
from service.core.storage import LocalStore
from workers.supervisor import drain_marker, run_train_job


def setup(tmp_path):
    settings = Settings(data_dir=tmp_path, stale_after_s=4, heartbeat_s=0.5)
    store = LocalStore(tmp_path / "store")
    jobs = JobStore(store)
    job = jobs.create(JobRecord(id=new_id(), config={"decoder": "deconv", "steps": 10}, style_id=new_id(), steps=10))
    return settings, store, jobs, job


def test_a_job_whose_style_is_gone_fails_with_the_reason_instead_of_retrying(tmp_path):
    settings, store, jobs, job = setup(tmp_path)  # its style was never stored
    sent = []
    assert run_train_job(settings, store, job.id, worker="w", requeue=sent.append) == JobState.failed
    record = jobs.get(job.id)
    assert "gone from the store" in record.error and f"styles/{job.style_id}" in record.error
    assert sent == [] and record.attempts == 1 and not (settings.work_dir / job.id).exists()


def test_a_worker_shutting_down_hands_new_jobs_back_untouched(tmp_path):
    settings, store, jobs, job = setup(tmp_path)
    marker = drain_marker(settings, os.getppid())  # as the worker's main process writes it on SIGTERM
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    sent = []
    assert run_train_job(settings, store, job.id, worker="w", requeue=sent.append) is None
    assert sent == [job.id]
    record = jobs.get(job.id)
    assert record.state == JobState.queued and record.attempts == 0 and record.history == []


def test_an_attempt_removes_its_own_folder_and_not_the_one_that_took_over(tmp_path):
    # Workers on one machine share the scratch folder: an attempt that lost its lease must not
    # delete the folder of the attempt (on another worker there) that took the job over.
    settings, store, jobs, job = setup(tmp_path)
    taken_over = settings.work_dir / job.id / "attempt-2"
    taken_over.mkdir(parents=True)
    (taken_over / "spec.json").write_text("{}")
    assert run_train_job(settings, store, job.id, worker="w", requeue=[].append) == JobState.failed  # style gone
    assert (taken_over / "spec.json").exists() and not (settings.work_dir / job.id / "attempt-1").exists()
