"""Running totals for /metrics (service/api/metrics.py), so that a scrape reads a few records
however many jobs and stylisations the store keeps: the jobs ended so far, by state, and the
request-to-result seconds of succeeded stylisations as a histogram. Each is one record, changed
by compare-and-set when a job ends (Jobs.update) or a stylisation succeeds (Stylizations.update).
Where one does not exist yet (a store from before these totals) its first reader builds it from
every record, once. A total is changed after its record's own change: a crash between the two
leaves it one short, as does a job that ends while its total is being built."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from pydantic import BaseModel, Field

from service.core import cas
from service.core.errors import NotFound
from service.core.keys import Keys
from service.core.records import JobRecord, JobState, StylizeRecord
from service.core.storage import ObjectStore, VersionConflict

STYLIZE_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, float("inf"))  # upper bounds, seconds
T = TypeVar("T", bound=BaseModel)


class JobsEnded(BaseModel):
    version: int = 0
    by_state: dict[str, int] = Field(default_factory=dict)

    def add(self, state: str) -> None:
        self.by_state[state] = self.by_state.get(state, 0) + 1


class StylizeSeconds(BaseModel):
    version: int = 0
    counts: list[int] = Field(default_factory=lambda: [0] * len(STYLIZE_BUCKETS))  # per bucket, not cumulative
    sum: float = 0.0

    def add(self, seconds: float) -> None:
        self.counts[next(i for i, b in enumerate(STYLIZE_BUCKETS) if seconds <= b)] += 1
        self.sum += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus' buckets: (upper bound, how many took at most that)."""
        total, out = 0, []
        for bound, n in zip(STYLIZE_BUCKETS, self.counts):
            total += n
            out.append(("+Inf" if bound == float("inf") else str(bound), total))
        return out


def stylize_seconds_of(r: StylizeRecord) -> float:
    return (r.finished_at - r.created_at).total_seconds()


def job_ended(store: ObjectStore, state: JobState) -> None:
    _add(store, Keys.jobs_ended(), JobsEnded, lambda t: t.add(state.value))


def stylization_succeeded(store: ObjectStore, r: StylizeRecord) -> None:
    _add(store, Keys.stylize_seconds(), StylizeSeconds, lambda t: t.add(stylize_seconds_of(r)))


def jobs_ended(store: ObjectStore, every_job: Callable[[], Iterable[JobRecord]]) -> JobsEnded:
    def build() -> JobsEnded:
        totals = JobsEnded()
        for r in every_job():
            if r.final:
                totals.add(r.state.value)
        return totals

    return _read_or_build(store, Keys.jobs_ended(), JobsEnded, build)


def stylize_seconds(store: ObjectStore, every_stylization: Callable[[], Iterable[StylizeRecord]]) -> StylizeSeconds:
    def build() -> StylizeSeconds:
        totals = StylizeSeconds()
        for r in every_stylization():
            if r.state == JobState.succeeded and r.finished_at:
                totals.add(stylize_seconds_of(r))
        return totals

    return _read_or_build(store, Keys.stylize_seconds(), StylizeSeconds, build)


def _add(store: ObjectStore, key: str, model: type[T], change: Callable[[T], None]) -> None:
    try:
        cas.update(store, key, model, change, key)
    except NotFound:  # not built yet: its first reader counts this from the records
        pass


def _read_or_build(store: ObjectStore, key: str, model: type[T], build: Callable[[], T]) -> T:
    try:
        return cas.read(store, key, model, key)[0]
    except NotFound:
        pass
    try:
        cas.create(store, key, build())
    except VersionConflict:  # another reader built it meanwhile
        pass
    return cas.read(store, key, model, key)[0]
