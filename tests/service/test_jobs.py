"""The job core: the state machine, and concurrent writers that must not lose each other's
updates (worker progress, API cancel, the stale-job sweeper), on the local store and on S3
(moto's server over HTTP)."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest

from service.core.errors import Conflict, InvalidTransition, LostLease
from service.core.lease import Start
from service.core.stores import Stores
from service.core.keys import new_id
from service.core.protocol import TrainProgress
from service.core.records import JobRecord, JobState, now
from service.core.storage import LocalStore, S3Store


@pytest.fixture(params=["local", "s3"])
def stores(request, tmp_path) -> Stores:
    if request.param == "local":
        return Stores(LocalStore(tmp_path / "store"))
    endpoint = request.getfixturevalue("s3_endpoint")
    return Stores(S3Store(bucket=f"jobs-{uuid.uuid4().hex[:12]}", endpoint_url=endpoint, access_key="test",
                          secret_key="test", create_bucket=True))


def new_job(stores: Stores, **fields) -> JobRecord:
    return stores.jobs.create(JobRecord(id=new_id(), config={"decoder": "deconv", "steps": 30}, style_id=new_id(), steps=30,
                                        **fields))


def start(stores: Stores, job_id: str, **kw) -> tuple[Start, JobRecord]:
    return stores.jobs.start_attempt(job_id, worker=kw.pop("worker", "w1"), max_attempts=kw.pop("max_attempts", 3),
                                     stale_after_s=kw.pop("stale_after_s", 5))


def progress(step: int) -> TrainProgress:
    return TrainProgress(step=step, steps=30, start_step=0, losses={"loss": 100.0 - step}, probe=None,
                         seconds_per_step=0.1, precision="32-true")


def test_final_states_are_final(stores):
    job = new_job(stores)
    stores.jobs.request_cancel(job.id)
    assert stores.jobs.get(job.id).state == JobState.cancelled and job.id not in stores.jobs.active_ids()
    with pytest.raises(Conflict, match="already cancelled"):
        stores.jobs.request_cancel(job.id)
    record = stores.jobs.get(job.id)
    with pytest.raises(InvalidTransition, match="cannot become running"):
        record.move(JobState.running)


def test_only_one_of_two_deliveries_starts_a_job(stores):
    job = new_job(stores)
    decisions = []
    barrier = threading.Barrier(2)

    def deliver(worker: str) -> None:
        barrier.wait()
        decisions.append(start(stores, job.id, worker=worker)[0])

    threads = [threading.Thread(target=deliver, args=(w,)) for w in ("w1", "w2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(decisions) == sorted([Start.run, Start.running_elsewhere])
    record = stores.jobs.get(job.id)
    assert record.attempts == 1 and len(record.history) == 1


def test_cancel_racing_progress_loses_neither(stores):
    job = new_job(stores)
    assert start(stores, job.id)[0] == Start.run
    go = threading.Event()

    def worker() -> None:
        go.wait()
        for step in range(1, 31):
            stores.jobs.heartbeat(job.id, 1, progress(step))

    def api() -> None:
        go.wait()
        stores.jobs.request_cancel(job.id)

    threads = [threading.Thread(target=worker), threading.Thread(target=api)]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join()
    record = stores.jobs.get(job.id)
    assert record.cancel_requested_at is not None  # the API's write survived
    assert record.step == 30 and record.losses == {"loss": 70.0}  # and so did every progress write
    assert record.state == JobState.running and record.version >= 32


def test_sweeper_racing_a_heartbeat_never_leaves_two_owners(stores):
    for _ in range(5):
        job = new_job(stores)
        start(stores, job.id)
        stores.jobs.update(job.id, lambda r: setattr(r, "heartbeat_at", now() - timedelta(minutes=1)))  # looks dead
        results: dict[str, object] = {}
        barrier = threading.Barrier(2)

        def beat() -> None:
            barrier.wait()
            try:
                stores.jobs.heartbeat(job.id, 1, progress(5))
                results["beat"] = "renewed"
            except LostLease:
                results["beat"] = "lost"

        def sweep() -> None:
            barrier.wait()
            results["sweep"] = stores.jobs.requeue_if_stale(job.id, stale_after_s=5)

        threads = [threading.Thread(target=beat), threading.Thread(target=sweep)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        record = stores.jobs.get(job.id)
        # Exactly one wins: the heartbeat renewed the lease and the sweeper left the job alone,
        # or the sweeper requeued it and the old supervisor learns it lost the job.
        assert (results["beat"], results["sweep"]) in {("renewed", False), ("lost", True)}
        assert record.state == (JobState.queued if results["sweep"] else JobState.running)


def test_cancel_racing_the_sweeper_keeps_both(stores):
    job = new_job(stores)
    start(stores, job.id)
    stores.jobs.update(job.id, lambda r: setattr(r, "heartbeat_at", now() - timedelta(minutes=1)))
    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=lambda: (barrier.wait(), stores.jobs.request_cancel(job.id))),
               threading.Thread(target=lambda: (barrier.wait(), stores.jobs.requeue_if_stale(job.id, stale_after_s=5)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    record = stores.jobs.get(job.id)
    assert record.cancel_requested_at is not None and record.history[0].outcome == "requeued"
    # Cancel first: flagged, then requeued with its flag. Sweeper first: a queued job is cancelled at once.
    assert record.state in (JobState.queued, JobState.cancelled)
    # Either way the next delivery honours the cancel instead of training.
    assert start(stores, job.id)[0] == Start.over and stores.jobs.get(job.id).state == JobState.cancelled


def test_a_job_that_dies_every_time_fails_with_the_last_reason(stores):
    job = new_job(stores)
    for attempt in (1, 2, 3):
        assert start(stores, job.id)[0] == Start.run
        stores.jobs.heartbeat(job.id, attempt, progress(7))
        stores.jobs.end_attempt(job.id, attempt, JobState.queued, reason="the training process was killed by signal 9")
    decision, record = start(stores, job.id)
    assert decision == Start.over and record.state == JobState.failed
    assert "gave up after 3 attempts" in record.error and "killed by signal 9" in record.error
    assert [a.reason for a in record.history] == ["the training process was killed by signal 9"] * 3
    assert job.id not in stores.jobs.active_ids()


def test_a_job_running_elsewhere_is_not_run_twice(stores):
    job = new_job(stores)
    start(stores, job.id)
    decision, record = start(stores, job.id, worker="w2")
    assert decision == Start.running_elsewhere and record.attempts == 1


def test_a_dead_workers_job_is_taken_over_by_the_next_delivery(stores):
    job = new_job(stores)
    start(stores, job.id)
    stores.jobs.update(job.id, lambda r: setattr(r, "heartbeat_at", now() - timedelta(minutes=1)))
    decision, record = start(stores, job.id, worker="w2")
    assert decision == Start.run and record.attempts == 2
    assert record.history[0].outcome == "requeued" and record.history[1].worker == "w2"
    with pytest.raises(LostLease):  # the first supervisor, if it still lives, may write nothing
        stores.jobs.heartbeat(job.id, 1, progress(3))


def test_the_sweeper_requeues_only_stale_running_jobs_once(stores):
    stale, fresh = new_job(stores), new_job(stores)
    start(stores, stale.id)
    start(stores, fresh.id)
    stores.jobs.update(stale.id, lambda r: setattr(r, "heartbeat_at", now() - timedelta(minutes=1)))
    assert stores.jobs.requeue_if_stale(stale.id, stale_after_s=5) is True
    assert stores.jobs.requeue_if_stale(stale.id, stale_after_s=5) is False  # queued now: not again
    assert stores.jobs.requeue_if_stale(fresh.id, stale_after_s=5) is False


def test_a_job_deleted_before_it_ran_is_gone(stores):
    job = new_job(stores)
    stores.jobs.request_cancel(job.id)
    stores.jobs.delete(job.id)
    assert start(stores, job.id) == (Start.gone, None)


def test_only_one_of_two_deliveries_starts_a_stylisation(stores):
    from service.core.records import StylizeRecord

    request = stores.stylizations.create(StylizeRecord(id=new_id(), job_id=new_id(), inputs=[]))
    decisions = []
    barrier = threading.Barrier(2)

    def deliver() -> None:
        barrier.wait()
        decisions.append(stores.stylizations.start(request.id, max_attempts=3, stale_after_s=5)[0])

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(decisions) == sorted([Start.run, Start.running_elsewhere])
    assert stores.stylizations.get(request.id).attempts == 1


def test_a_stylisation_whose_worker_died_is_requeued_then_failed_at_the_limit(stores):
    from service.core.records import StylizeRecord

    request = stores.stylizations.create(StylizeRecord(id=new_id(), job_id=new_id(), inputs=[]))
    for attempt in (1, 2):
        assert stores.stylizations.start(request.id, max_attempts=2, stale_after_s=5)[0] == Start.run
        stores.stylizations.update(request.id, lambda r: setattr(r, "heartbeat_at", now() - timedelta(minutes=1)))
        requeued = stores.stylizations.requeue_if_stale(request.id, stale_after_s=5, max_attempts=2)
        assert requeued is (attempt == 1)  # the second death is the last
    record = stores.stylizations.get(request.id)
    assert record.state == JobState.failed and "gave up after 2 attempts" in record.error
    assert request.id not in stores.stylizations.active_ids()


def test_a_cancelled_stylisation_whose_worker_died_is_cancelled_not_run_again(stores):
    """The cancel flag outlives the worker that should have acted on it: the sweeper ends the
    stylisation cancelled, and a delivery of one requeued with the flag does not run it."""
    from service.core.records import StylizeRecord

    swept, delivered = (stores.stylizations.create(StylizeRecord(id=new_id(), job_id=new_id(), inputs=[], owner="o"))
                        for _ in range(2))
    for r in (swept, delivered):
        assert stores.stylizations.start(r.id, max_attempts=3, stale_after_s=5)[0] == Start.run
        assert stores.stylizations.request_cancel(r.id, "o").state == JobState.running
    stores.stylizations.update(swept.id, lambda r: setattr(r, "heartbeat_at", now() - timedelta(minutes=1)))
    assert stores.stylizations.requeue_if_stale(swept.id, stale_after_s=5, max_attempts=3) is False
    assert stores.stylizations.get(swept.id).state == JobState.cancelled
    stores.stylizations.update(delivered.id, lambda r: r.move(JobState.queued))  # as a server's death requeues it
    decision, record = stores.stylizations.start(delivered.id, max_attempts=3, stale_after_s=5)
    assert decision == Start.over and record.state == JobState.cancelled and record.attempts == 1
    assert not {swept.id, delivered.id} & set(stores.stylizations.active_ids())


def test_stops_for_a_worker_shutdown_do_not_count_against_the_attempt_limit(stores):
    job = new_job(stores)
    for attempt in range(1, 6):
        assert start(stores, job.id)[0] == Start.run
        stores.jobs.end_attempt(job.id, attempt, JobState.queued, reason="its worker was asked to stop", counted=False)
    decision, record = start(stores, job.id)
    assert decision == Start.run and record.attempts == 6 and record.counted_attempts == 1


def test_finished_stylisations_past_their_keeping_time_are_deleted(stores):
    from service.core.records import StylizeRecord

    old, recent, running = (stores.stylizations.create(StylizeRecord(id=new_id(), job_id=new_id(), inputs=[]))
                            for _ in range(3))
    stores.store.put_bytes(f"stylizations/{old.id}/output-000.png", b"png")
    for r in (old, recent):
        stores.stylizations.update(r.id, lambda x: (x.move(JobState.running), x.move(JobState.succeeded)))
    stores.stylizations.update(old.id, lambda x: setattr(x, "finished_at", now() - timedelta(days=8)))
    stores.stylizations.update(running.id, lambda x: x.move(JobState.running))
    assert stores.stylizations.delete_old(older_than_s=7 * 24 * 3600) == [old.id]
    assert stores.store.list(f"stylizations/{old.id}") == []
    assert {r.id for r in stores.stylizations.all()} == {recent.id, running.id}
