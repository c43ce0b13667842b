"""Job records: create, read, list and change a training job; the worker's attempt at it under
a lease (service/core/lease.py); the sweeper's requeue and resend. Every state change goes
through `_Record.move`, the state machine in service/core/records.py, and is announced to the
job's webhook with the write that made it (announcements.py beside this module)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from service.core import cas, lease, usage
from service.core.cas import Skip
from service.core.errors import LostLease, NotFound
from service.core.keys import Keys, check_id
from service.core.lease import Start
from service.core.protocol import TrainProgress
from service.core.records import Attempt, JobRecord, JobState, now
from service.core.stores.announcements import Announcements
from service.core.stores.cancel import ask_to_cancel
from service.core.stores.record_store import JOBS, RecordStore, visible
from service.core.stores import totals
from service.core.stores.stylizations import Stylizations

CURVE_POINTS = 200  # the loss curve in a record keeps about this many rows


class Jobs:
    def __init__(self, records: RecordStore, stylizations: Stylizations, announcements: Announcements):
        self.records = records
        self.store = records.store
        self.stylizations = stylizations
        self.announcements = announcements

    def create(self, record: JobRecord) -> JobRecord:
        self.records.index(JOBS, record)
        self.announcements.announce(record)
        self.records.create(Keys.job(record.id), record)
        self.records.mark_active(JOBS, record.id)
        self.announcements.flush(record)
        return record

    def get(self, job_id: str, scope: str | None = None) -> JobRecord:
        """A job; with `scope` (an owner's id), only that owner's: another's is as missing."""
        record = self.records.read(Keys.job(check_id(job_id, "job")), JobRecord, f"job {job_id!r}")[0]
        return visible(record, scope, f"no job {job_id!r}")

    def update(self, job_id: str, change: Callable[[JobRecord], None]) -> JobRecord:
        """The job after `change` (a compare-and-set); a change of state is announced, and a
        final one frees the job's active marker and its count against the owner's quota, and
        counts in the jobs ended (service/core/stores/totals.py)."""
        before: list[JobState] = []

        def noting(r: JobRecord) -> None:
            before[:] = [r.state]
            change(r)
            if r.state != before[0]:
                self.announcements.announce(r)

        record = self.records.update(Keys.job(check_id(job_id, "job")), JobRecord, noting, f"job {job_id!r}")
        self.announcements.flush(record)
        if record.final:
            self.records.unmark_active(JOBS, record.id)
            usage.release(self.store, record.owner, [record.id])
            if before[0] != record.state:
                totals.job_ended(self.store, record.state)
        return record

    def list(self, scope: str | None = None, *, limit: int, cursor: str | None = None) -> tuple[list[JobRecord], str | None]:
        """One page of jobs (of the owner `scope`, if given), newest first, and the cursor of the
        next page (None: this is the last). Reads `limit` index entries and their records only."""
        return self.records.page(JOBS, Keys.job, JobRecord, scope, limit, cursor)

    def all(self, scope: str | None = None) -> Iterator[JobRecord]:
        """Every job (of the owner `scope`, if given), newest first, page by page: for what needs
        them all (quotas, storage used, metrics). Reads every record it yields."""
        return self.records.walk(JOBS, Keys.job, JobRecord, scope)

    def get_many(self, job_ids: list[str]) -> dict[str, JobRecord]:
        """These jobs, read a few at a time; a missing one is left out."""
        return {r.id: r for r in self.records.read_many([Keys.job(check_id(i, "job")) for i in job_ids], JobRecord)}

    def exists(self, job_id: str) -> bool:
        return self.store.exists(Keys.job(check_id(job_id, "job")))

    def final_or_gone(self, job_id: str) -> bool:
        try:
            return self.get(job_id).final
        except NotFound:
            return True

    def delete(self, job_id: str) -> int:
        """The job's record, checkpoint, report, panel, and every stylisation made with it."""
        record = self.get(job_id)
        self.records.unmark_active(JOBS, job_id)
        usage.release(self.store, record.owner, [job_id])
        deleted = usage.delete_prefix(self.store, record.owner, Keys.job_prefix(job_id))
        self.records.unindex(JOBS, record)
        for request in self.stylizations.all():
            if request.job_id == job_id:
                deleted += self.stylizations.delete(request)
        return deleted

    def active_ids(self) -> list[str]:
        """The unfinished jobs, from their markers (no record read)."""
        return self.records.active_ids(JOBS)

    def request_cancel(self, job_id: str, scope: str | None = None) -> JobRecord:
        """A queued job is cancelled at once; a running one is flagged, and its supervisor
        stops it at its next heartbeat."""
        return self.update(job_id, lambda r: ask_to_cancel(r, scope, "job", job_id))

    def fail_unqueued(self, job_id: str, reason: str) -> JobRecord:
        """A job whose message never reached the queue fails with the reason."""
        return self.update(job_id, lambda r: r.move(JobState.failed, error=reason))

    # --- what a worker does with a job ------------------------------------------------------

    def fail_if_queued(self, job_id: str, reason: str) -> JobRecord:
        """A job that this worker can never run (it asks for more GPUs than the worker has)
        fails with the reason; one that has started or ended meanwhile is left as it is."""
        def change(r: JobRecord) -> None:
            if r.state != JobState.queued:
                raise Skip
            r.move(JobState.failed, error=reason)

        return self.update(job_id, change)

    def start_attempt(self, job_id: str, *, worker: str, max_attempts: int,
                      stale_after_s: float) -> tuple[Start, JobRecord | None]:
        """Decide, atomically, whether this worker runs the job now (service/core/lease.py), and
        if so begin an attempt."""
        decision = [Start.run]

        def given_up(r: JobRecord) -> str:
            last = r.attempt.reason if r.attempt and r.attempt.reason else "each ended without finishing"
            return f"the last ended at step {r.step}: {last}"

        def change(r: JobRecord) -> None:
            decision[0], changed = lease.begin(
                r, used=r.counted_attempts, max_attempts=max_attempts, stale_after_s=stale_after_s,
                why=lambda: given_up(r),
                taken_over=lambda r: r.end_attempt("requeued", "its worker stopped sending heartbeats"))
            if not changed:
                raise Skip
            if decision[0] == Start.run:
                r.error = None
                r.started_at = r.started_at or now()
                r.history.append(Attempt(number=r.attempts, worker=worker, start_step=r.step))

        try:
            record = self.update(job_id, change)
        except NotFound:
            return Start.gone, None
        return decision[0], record

    def heartbeat(self, job_id: str, attempt: int, progress: TrainProgress | None = None) -> JobRecord:
        """Renew the attempt's lease and record the child's latest progress. LostLease if the
        job was requeued, cancelled or deleted meanwhile."""
        def change(r: JobRecord) -> None:
            lease.renew(r, attempt, "job")
            if progress:
                apply_progress(r, progress)

        try:
            return self.update(job_id, change)
        except NotFound:
            raise LostLease(f"job {job_id} was deleted") from None

    def name_checkpoint(self, job_id: str, attempt: int, key: str) -> str | None:
        """The attempt's stored checkpoint becomes the job's current one, if the attempt still
        holds the job (LostLease otherwise: the caller drops its upload). Returns the key it
        replaced, if another: the caller deletes that object."""
        replaced: list[str | None] = [None]

        def change(r: JobRecord) -> None:
            lease.hold(r, attempt, "job")
            replaced[0] = r.checkpoint if r.checkpoint != key else None
            if r.checkpoint == key:
                raise Skip
            r.checkpoint = key

        try:
            self.update(job_id, change)
        except NotFound:
            raise LostLease(f"job {job_id} was deleted") from None
        return replaced[0]

    def end_attempt(self, job_id: str, attempt: int, state: JobState, *, reason: str | None = None,
                    result: Callable[[JobRecord], None] | None = None, counted: bool = True) -> JobRecord:
        """The attempt is over: final (succeeded, failed, cancelled) or back on the queue
        (`counted=False`: not against the attempt limit, as when its worker shuts down)."""
        def change(r: JobRecord) -> None:
            lease.hold(r, attempt, "job")
            if result is not None:
                result(r)
            outcome = "requeued" if state == JobState.queued else state.value
            r.end_attempt(outcome, reason, counted=counted)
            r.move(state, error=reason if state == JobState.failed else None)

        return self.update(job_id, change)

    def requeue_if_stale(self, job_id: str, *, stale_after_s: float) -> bool:
        """The sweeper's change: a running job whose heartbeat stopped goes back to queued."""
        def change(r: JobRecord) -> None:
            if not lease.lapsed(r, stale_after_s):
                raise Skip
            r.end_attempt("requeued", f"its worker stopped sending heartbeats for {stale_after_s:.0f} s")
            r.move(JobState.queued)

        return self._written(job_id, change)

    def claim_resend(self, job_id: str, *, after_s: float) -> bool:
        """The sweeper's claim on a queued job whose message looks lost (sent more than after_s
        ago): True for exactly one sweeper, which then sends it again."""
        def change(r: JobRecord) -> None:
            if r.state != JobState.queued or (now() - r.sent_at).total_seconds() <= after_s:
                raise Skip
            r.resent_at = now()

        return self._written(job_id, change)

    def _written(self, job_id: str, change: Callable[[JobRecord], None]) -> bool:
        """Whether `change` was written: False if it skipped (raised Skip) or the job is gone."""
        return cas.written(lambda c: self.update(job_id, c), change)


def apply_progress(r: JobRecord, progress: TrainProgress) -> None:
    """The child's progress (service/core/protocol.py) into the record: step, latest losses and
    probe row, speed, and thinned curves."""
    if progress.losses and progress.step != r.step and (
            progress.step % max(1, r.steps // CURVE_POINTS) == 0 or progress.step == r.steps):
        r.loss_curve.append({"step": progress.step, **progress.losses})
    probe = progress.probe
    if probe and (not r.artifact_curve or r.artifact_curve[-1]["step"] != probe.step):
        r.artifact_curve.append(probe.to_dict())
    r.step = progress.step
    if progress.start_step is not None and r.attempt is not None:
        r.attempt.start_step = progress.start_step
        r.resumed_from_step = progress.start_step or None
    r.losses = progress.losses or r.losses
    r.artifacts = (probe.measures() if probe else {}) or r.artifacts
    r.seconds_per_step = progress.seconds_per_step or r.seconds_per_step
    r.trained_precision = progress.precision or r.trained_precision
