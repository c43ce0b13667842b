"""Stylisation records: a request to stylise images or a video with a trained job's network,
its lease while a worker runs it (service/core/lease.py), and its retention."""

from __future__ import annotations

from collections.abc import Callable

from service.core import cas, lease, usage
from service.core.cas import Skip
from service.core.errors import LostLease, NotFound
from service.core.keys import Keys, check_id
from service.core.lease import Start
from service.core.records import JobState, StylizeRecord, now
from service.core.stores import totals
from service.core.stores.cancel import ask_to_cancel
from service.core.stores.record_store import STYLIZATIONS, RecordStore, visible


class Stylizations:
    def __init__(self, records: RecordStore):
        self.records = records
        self.store = records.store

    def create(self, record: StylizeRecord) -> StylizeRecord:
        self.records.create(Keys.stylize(record.id), record)
        self.records.mark_active(STYLIZATIONS, record.id)
        return record

    def get(self, request_id: str, scope: str | None = None) -> StylizeRecord:
        key = Keys.stylize(check_id(request_id, "stylization"))
        return visible(self.records.read(key, StylizeRecord, f"stylization {request_id!r}")[0], scope,
                       f"no stylization {request_id!r}")

    def update(self, request_id: str, change: Callable[[StylizeRecord], None]) -> StylizeRecord:
        """The request after `change` (a compare-and-set); a final one frees its active marker,
        and a success counts in the latency totals (service/core/stores/totals.py)."""
        before: list[JobState] = []

        def noting(r: StylizeRecord) -> None:
            before[:] = [r.state]
            change(r)

        record = self.records.update(Keys.stylize(check_id(request_id, "stylization")), StylizeRecord, noting,
                                     f"stylization {request_id!r}")
        if record.final:
            self.records.unmark_active(STYLIZATIONS, record.id)
            if before[0] != record.state == JobState.succeeded and record.finished_at:
                totals.stylization_succeeded(self.store, record)
        return record

    def all(self) -> list[StylizeRecord]:
        """Every stylisation, newest first (every record read)."""
        return self.records.scan("stylizations", "request.json", StylizeRecord)

    def active_ids(self) -> list[str]:
        return self.records.active_ids(STYLIZATIONS)

    def delete(self, record: StylizeRecord) -> int:
        """The request's record, inputs and outputs (taken off its owner's storage count)."""
        self.records.unmark_active(STYLIZATIONS, record.id)
        return usage.delete_prefix(self.store, record.owner, Keys.stylize_prefix(record.id))

    def delete_old(self, *, older_than_s: float) -> list[str]:
        """Retention: finished stylisations (inputs, outputs, record) older than this go."""
        gone = []
        for r in self.all():
            if r.final and r.finished_at and (now() - r.finished_at).total_seconds() > older_than_s:
                self.delete(r)
                gone.append(r.id)
        return gone

    def request_cancel(self, request_id: str, scope: str | None = None) -> StylizeRecord:
        """A queued stylisation is cancelled at once; a running one is flagged, and its worker
        stops it at its next heartbeat (workers/stylize_task.py, run_stylize)."""
        return self.update(request_id, lambda r: ask_to_cancel(r, scope, "stylization", request_id))

    # --- what a worker does with a stylisation ----------------------------------------------

    def start(self, request_id: str, *, max_attempts: int, stale_after_s: float) -> tuple[Start, StylizeRecord | None]:
        """Whether this worker runs the stylisation now (service/core/lease.py)."""
        decision = [Start.run]

        def change(r: StylizeRecord) -> None:
            decision[0], changed = lease.begin(r, used=r.attempts, max_attempts=max_attempts,
                                               stale_after_s=stale_after_s, why=lambda: "each ended without finishing")
            if not changed:
                raise Skip

        try:
            record = self.update(request_id, change)
        except NotFound:
            return Start.gone, None
        return decision[0], record

    def heartbeat(self, request_id: str, attempt: int, progress: dict[str, int] | None = None) -> StylizeRecord:
        """The lease renewed (and a video's progress noted); the record tells of a cancel."""
        def change(r: StylizeRecord) -> None:
            lease.renew(r, attempt, "stylization")
            if progress:
                r.progress = dict(progress)

        try:
            return self.update(request_id, change)
        except NotFound:
            raise LostLease(f"stylization {request_id} was deleted") from None

    def claim_resend(self, request_id: str, *, after_s: float) -> bool:
        """The sweeper's claim on a queued request whose message looks lost (sent more than
        after_s ago): True for exactly one sweeper, which then sends it again."""
        def change(r: StylizeRecord) -> None:
            if r.state != JobState.queued or (now() - r.sent_at).total_seconds() <= after_s:
                raise Skip
            r.resent_at = now()

        return cas.written(lambda c: self.update(request_id, c), change)

    def requeue_if_stale(self, request_id: str, *, stale_after_s: float, max_attempts: int) -> bool:
        """The sweeper's change: a dead worker's request is queued again, or fails with the
        reason after the attempt limit. True if it should be sent again."""
        requeued = [False]

        def change(r: StylizeRecord) -> None:
            requeued[0] = False
            if not lease.lapsed(r, stale_after_s):
                raise Skip
            if r.cancel_requested_at is not None:  # its worker died before it could stop it
                r.move(JobState.cancelled)
            elif lease.exhausted(r.attempts, max_attempts):
                r.move(JobState.failed, error=lease.gave_up(max_attempts, "its worker stopped each time"))
            else:
                r.move(JobState.queued)
                requeued[0] = True

        try:
            self.update(request_id, change)
        except NotFound:
            return False
        return requeued[0]
