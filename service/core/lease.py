"""The lease a worker holds on a record while it runs it: a training job or a stylisation. The
rules are written here once; the stores (service/core/stores/) apply them inside one
compare-and-set of the record, and a content set's validation (workers/validate.py) uses the
same staleness and give-up rule on its own states.

- An attempt begins only where no other attempt is alive: none running, or the running one's
  heartbeat older than stale_after_s (its worker died). It numbers itself (record.attempts).
- The attempt's writes (heartbeats, progress, its end) go through only while it still holds
  the record, the same state and attempt number; LostLease otherwise (requeued, cancelled or
  deleted meanwhile), and its worker stops.
- A holder whose heartbeats stop loses the lease: the sweeper requeues the record. The holder
  pauses its work once half the stale timeout has passed without a renewal, and stops it at
  the whole (`hold_of`), so it never runs beside the attempt a sweeper's requeue lets begin.
- After max_attempts the work is given up, with why (gave_up).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Protocol

from service.core.errors import LostLease
from service.core.records import JobState, now


class Start(str, Enum):
    """What a worker that received a record's message should do."""

    run = "run"
    running_elsewhere = "running elsewhere"  # a fresh heartbeat: never run twice
    over = "over"  # final already, or just made final (cancelled, gave up)
    gone = "gone"  # deleted before it ran


class Leased(Protocol):
    id: str
    state: JobState
    attempts: int
    heartbeat_at: datetime | None
    cancel_requested_at: datetime | None

    @property
    def final(self) -> bool: ...

    def move(self, state: JobState, *, error: str | None = None) -> None: ...


def stale(heartbeat_at: datetime | None, after_s: float) -> bool:
    """No heartbeat for after_s: its holder is taken for dead."""
    return heartbeat_at is None or (now() - heartbeat_at).total_seconds() > after_s


def exhausted(used: int, max_attempts: int) -> bool:
    """The attempt limit: `used` attempts that count are all there may be."""
    return used >= max_attempts


def gave_up(attempts: int, why: str) -> str:
    """The reason a record fails at the attempt limit."""
    return f"gave up after {attempts} attempts: {why}"


def begin(r: Leased, *, used: int, max_attempts: int, stale_after_s: float, why: Callable[[], str],
          taken_over: Callable[[Leased], None] = lambda r: None) -> tuple[Start, bool]:
    """Whether a delivery of `r` runs it now, and whether `r` was changed (to be written).
    `used`: the attempts that count against the limit; `why`: what gave_up says; `taken_over`:
    what the record notes of an attempt found dead here (before any sweeper requeued it).
    Start.run: `r` is running as attempt r.attempts, with a fresh heartbeat."""
    if r.final:
        return Start.over, False
    if r.state == JobState.running and not stale(r.heartbeat_at, stale_after_s):
        return Start.running_elsewhere, False  # a duplicate delivery
    if r.state == JobState.running:
        taken_over(r)
        r.move(JobState.queued)
    if r.cancel_requested_at is not None:  # cancelled while it ran, then requeued: it ends here
        r.move(JobState.cancelled)
        return Start.over, True
    if exhausted(used, max_attempts):
        r.move(JobState.failed, error=gave_up(max_attempts, why()))
        return Start.over, True
    r.move(JobState.running)
    r.attempts += 1
    r.heartbeat_at = now()
    return Start.run, True


def hold(r: Leased, attempt: int, what: str) -> None:
    """LostLease unless `attempt` still holds `r`."""
    if r.state != JobState.running or r.attempts != attempt:
        raise LostLease(f"{what} {r.id} is {r.state.value} at attempt {r.attempts}, not running attempt {attempt}")


def renew(r: Leased, attempt: int, what: str) -> None:
    """The heartbeat: the lease held for another stale_after_s."""
    hold(r, attempt, what)
    r.heartbeat_at = now()


class Hold(str, Enum):
    """What a holder makes of its own lease, from the seconds since its last renewal got through."""

    held = "held"
    # Not renewed for half the stale timeout (a slow or unreachable store, a starved machine):
    # no sweeper may take the record yet, so its work waits, paused, and goes on if a renewal
    # gets through (which proves nobody took it), rather than ending an attempt a stall cost.
    in_doubt = "in doubt"
    # Not renewed for the whole stale timeout: a sweeper may have requeued it; its work stops.
    lapsed = "lapsed"


def hold_of(age_s: float, *, lease_s: float, stale_after_s: float) -> Hold:
    """`lease_s`: Settings.lease_s, half the stale timeout."""
    if age_s > stale_after_s:
        return Hold.lapsed
    return Hold.in_doubt if age_s > lease_s else Hold.held


def lapsed(r: Leased, stale_after_s: float) -> bool:
    """Running, and its holder's heartbeats stopped: for the sweeper to requeue."""
    return r.state == JobState.running and stale(r.heartbeat_at, stale_after_s)
