"""The lease rules (service/core/lease.py) on both kinds of record a worker runs: each decision
of `begin`, the holder's writes, the sweeper's test and the give-up rule."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.core import lease
from service.core.errors import LostLease
from service.core.lease import Start
from service.core.records import JobRecord, JobState, StylizeRecord, now

RULES = {"max_attempts": 2, "stale_after_s": 30.0}


def job() -> JobRecord:
    return JobRecord(id="j1", style_id="ihc", config={"steps": 3}, steps=3)


def stylization() -> StylizeRecord:
    return StylizeRecord(id="s1", job_id="j1", inputs=["a.png"])


def begin(r, **kw):
    return lease.begin(r, used=r.attempts, why=lambda: "each ended without finishing", **{**RULES, **kw})


@pytest.mark.parametrize("make", [job, stylization])
def test_a_queued_record_runs_as_its_next_attempt_with_a_fresh_heartbeat(make):
    r = make()
    assert begin(r) == (Start.run, True)
    assert r.state == JobState.running and r.attempts == 1 and not lease.stale(r.heartbeat_at, 1.0)


@pytest.mark.parametrize("make", [job, stylization])
def test_a_live_holder_is_never_run_twice_and_a_dead_one_is_taken_over(make):
    r = make()
    begin(r)
    assert begin(r) == (Start.running_elsewhere, False) and r.attempts == 1  # a duplicate delivery
    assert not lease.lapsed(r, RULES["stale_after_s"])
    r.heartbeat_at = now() - timedelta(seconds=31)
    assert lease.lapsed(r, RULES["stale_after_s"])
    noted = []
    assert lease.begin(r, used=r.attempts, why=lambda: "", taken_over=noted.append, **RULES) == (Start.run, True)
    assert noted == [r] and r.attempts == 2 and r.state == JobState.running


@pytest.mark.parametrize("make", [job, stylization])
def test_the_attempt_limit_fails_it_with_why_and_a_cancel_ends_it(make):
    r = make()
    r.attempts = 2
    assert begin(r) == (Start.over, True)
    assert r.state == JobState.failed and r.error == "gave up after 2 attempts: each ended without finishing"
    assert begin(r) == (Start.over, False)  # final: nothing to write
    c = make()
    c.cancel_requested_at = now()
    assert begin(c) == (Start.over, True) and c.state == JobState.cancelled


def test_only_the_attempt_that_holds_the_record_writes():
    r = job()
    begin(r)
    r.heartbeat_at = now() - timedelta(seconds=10)
    lease.renew(r, 1, "job")
    assert not lease.stale(r.heartbeat_at, 5.0)
    with pytest.raises(LostLease, match="job j1 is running at attempt 1, not running attempt 2"):
        lease.hold(r, 2, "job")
    r.move(JobState.queued)
    with pytest.raises(LostLease, match="is queued"):
        lease.renew(r, 1, "job")


def test_the_limit_counts_what_it_is_given():
    assert not lease.exhausted(1, 2) and lease.exhausted(2, 2)
    assert lease.stale(None, 1e9)  # never renewed: stale


def test_a_holder_is_in_doubt_past_half_the_stale_timeout_and_lapsed_past_the_whole():
    def of(age: float) -> lease.Hold:
        return lease.hold_of(age, lease_s=5, stale_after_s=10)

    assert [of(a) for a in (0, 5, 5.1, 10, 10.1)] == [lease.Hold.held, lease.Hold.held, lease.Hold.in_doubt,
                                                     lease.Hold.in_doubt, lease.Hold.lapsed]
