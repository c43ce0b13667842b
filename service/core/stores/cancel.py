"""A cancel, for jobs and stylisations alike (both stores use it)."""

from __future__ import annotations

from service.core.errors import Conflict
from service.core.records import JobRecord, JobState, StylizeRecord, now
from service.core.stores.record_store import visible


def ask_to_cancel(r: JobRecord | StylizeRecord, scope: str | None, what: str, record_id: str) -> None:
    """A queued one ends at once, a running one is flagged for its worker (which stops it at
    its next heartbeat); a finished one is a conflict."""
    visible(r, scope, f"no {what} {record_id!r}")
    if r.final:
        raise Conflict(f"{what} {record_id} has already {r.state.value}")
    r.cancel_requested_at = r.cancel_requested_at or now()
    if r.state == JobState.queued:
        r.move(JobState.cancelled)
