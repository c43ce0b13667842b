"""Each owner's use of the job quotas as one record, changed by compare-and-set with every job
that counts, so that a burst of submissions cannot pass a nearly full quota together (each
reservation is one compare-and-set: the second of two racing ones reads the first's), and a
submission reads one record, not every job its owner ever made.

- `active`: the owner's unfinished jobs. A submission reserves its jobs' ids before their
  records are written; a job's end releases its id (Jobs.update in service/core/stores/jobs.py, and a delete).
  An id left behind by a crash between two writes (a job made final whose release was lost, a
  reservation whose job was never written) is found when the quota looks full: the
  reservation then reads those few records (at most the quota's number) and drops the ids of
  jobs that ended, and of jobs that do not exist IN_FLIGHT_S after their reservation. So the
  count is never low, and high only until it matters.
- `minutes`: training work (service/core/submit.py training_pixels) per minute of creation,
  within the quota's window: a job's work counts from the start of its minute until that
  minute has left the window (up to a minute longer than the job's own time would).
- `stored_bytes` + `stored_since`: what the owner's objects take in the store (styles, content
  sets, jobs' checkpoints and outputs, stylisations). `stored_bytes` is the last measurement
  (`measure_storage`: every object of the owner listed, off the request path: a sweeper claims
  owners whose measurement is older than `storage_measure_s`); `stored_since` is what the API
  stored and deleted after it began (`add_stored`), so an upload or a delete counts at once and
  a worker's output at the next measurement. The storage quota reads this one record.

`recompute` rebuilds the record from the job records: for an operator after a crash
(`checkerless usage repair`), and where an owner has none yet (made before this record).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from service.core import cas
from service.core.errors import NotFound, QuotaExceeded
from service.core.keys import Keys
from service.core.records import JobRecord, now
from service.core.storage import ObjectStore, VersionConflict

# A reserved id whose job record is missing still counts for this long: its submission is
# writing the record (a reservation comes first). After it, the reservation is taken to have
# died with its request.
IN_FLIGHT_S = 120.0

if TYPE_CHECKING:
    from service.core.stores import Everyone, Stores
    from service.core.settings import Settings


class UsageRecord(BaseModel):
    owner: str
    version: int = 0
    active: dict[str, datetime] = Field(default_factory=dict)  # unfinished jobs' ids: when reserved
    minutes: dict[int, int] = Field(default_factory=dict)  # minute since the epoch -> training pixels
    stored_bytes: int | None = None  # the last measurement of the owner's objects (None: never measured)
    stored_since: int = 0  # bytes the API stored (+) or deleted (-) since that measurement began
    measured_at: datetime | None = None  # when the last measurement began (or was claimed)

    @property
    def stored(self) -> int | None:
        return None if self.stored_bytes is None else max(0, self.stored_bytes + self.stored_since)


def training_pixels(config: dict) -> int:
    """A job's training work in the quota's unit: steps x batch x crop pixels."""
    return config["steps"] * config["batch"] * config["size"] ** 2


def _minute(t: datetime) -> int:
    return int(t.timestamp() // 60)


def _trim(record: UsageRecord, window_s: int) -> None:
    """Minutes that have left the window (their last second older than the window) go."""
    oldest = (now().timestamp() - window_s) // 60
    record.minutes = {m: p for m, p in record.minutes.items() if m >= oldest}


def read(store: ObjectStore, owner: str) -> UsageRecord:
    return cas.read(store, Keys.usage(owner), UsageRecord, f"usage record of {owner!r}")[0]


def recompute(stores: Stores, owner: str, window_s: int) -> UsageRecord:
    """The owner's usage as the job records say: every record read."""
    record = UsageRecord(owner=owner)
    for job in stores.jobs.all(owner):
        if not job.final:
            record.active[job.id] = job.created_at
        m = _minute(job.created_at)
        record.minutes[m] = record.minutes.get(m, 0) + training_pixels(job.config)
    _trim(record, window_s)
    return record


def repair(stores: Stores, owner: str, window_s: int) -> UsageRecord:
    """Overwrite the owner's record with what the job records say (the version goes on, so a
    reservation racing the repair reads it again)."""
    fresh = recompute(stores, owner, window_s)

    def replace(r: UsageRecord) -> None:
        r.active, r.minutes = fresh.active, fresh.minutes

    return _change(stores.store, owner, replace, lambda: fresh)


def reserve(stores: Stores, owner: str, new: list[JobRecord], limits: Settings,
            still_active: Callable[[str], bool | None]) -> None:
    """Count `new` against the owner's quotas, or raise QuotaExceeded (a 429 with Retry-After)
    and count nothing. `still_active(job_id)` reads a job's record (None: there is none): used
    only when the active count looks full, to drop ids left behind by a crash."""
    asked = sum(training_pixels(r.config) for r in new)

    def take(r: UsageRecord) -> None:
        _trim(r, limits.quota_window_s)
        if len(r.active) + len(new) > limits.quota_active_jobs:
            r.active = {i: t for i, t in r.active.items() if _counts(i, t, still_active)}
            if len(r.active) + len(new) > limits.quota_active_jobs:
                raise QuotaExceeded(f"quota: at most {limits.quota_active_jobs} unfinished jobs at once; you have "
                                    f"{len(r.active)} (and asked for {len(new)} more); wait for one to end or "
                                    "cancel one", retry_after_s=limits.quota_retry_after_s)
        used = sum(r.minutes.values())
        if used + asked > limits.quota_training_pixels:
            raise QuotaExceeded(f"quota: training work is limited to {limits.quota_training_pixels:.3g} pixel-steps "
                                f"(steps x batch x size^2) per {limits.quota_window_s} s; you have used {used:.3g} "
                                f"and this asks for {asked:.3g}", retry_after_s=_room_in(r, used, asked, limits))
        r.active.update({j.id: now() for j in new})
        m = _minute(now())
        r.minutes[m] = r.minutes.get(m, 0) + asked

    # The owner's first job since usage records exist: the record is made from the jobs first.
    _change(stores.store, owner, take, lambda: recompute(stores, owner, limits.quota_window_s))


def _change(store: ObjectStore, owner: str, change: Callable[[UsageRecord], None],
            make: Callable[[], UsageRecord]) -> UsageRecord:
    """`change` applied to the owner's record by compare-and-set; where there is none yet, it
    is made by `make` first (another process making it meanwhile is as good)."""
    key, what = Keys.usage(owner), f"usage of {owner!r}"
    try:
        return cas.update(store, key, UsageRecord, change, what, take_turns=True)
    except NotFound:
        try:
            cas.create(store, key, make())
        except VersionConflict:
            pass
        return cas.update(store, key, UsageRecord, change, what, take_turns=True)


def stored(stores: Stores, owner: str) -> int:
    """Bytes the owner's objects take: one record read (measured first where it never was)."""
    try:
        used = read(stores.store, owner).stored
    except NotFound:
        used = None
    return used if used is not None else measure_storage(stores, owner)


def add_stored(store: ObjectStore, owner: str, size: int) -> None:
    """The API stored (size > 0) or is about to delete (size < 0) this many bytes of the owner's:
    counted at once. Nothing to do before the owner's first measurement (which will see it)."""
    if not owner or not size:
        return

    def add(r: UsageRecord) -> None:
        if r.stored_bytes is None:
            raise cas.Skip
        r.stored_since += size

    try:
        cas.update(store, Keys.usage(owner), UsageRecord, add, f"usage of {owner!r}", take_turns=True)
    except NotFound:
        pass


def count_prefix(store: ObjectStore, owner: str, prefix: str) -> None:
    """What the API just stored under `prefix` (a new style, set or request: one short listing)
    counts for the owner at once."""
    add_stored(store, owner, store.usage(prefix))


def delete_prefix(store: ObjectStore, owner: str, prefix: str) -> int:
    """Every object under `prefix` deleted (how many: ObjectStore.delete_prefix), then its bytes
    taken off the owner's count (a crash between the two leaves it high until the next measurement)."""
    size = store.usage(prefix)
    deleted = store.delete_prefix(prefix)
    add_stored(store, owner, -size)
    return deleted


def measure_storage(stores: Stores, owner: str, every: Everyone | None = None) -> int:
    """Every object of the owner listed (Stores.storage_used; `every`: what has no index by
    owner, when the caller read it once for many owners), then written as the new measurement;
    what the API counted while it listed stays counted on top (it may have been listed too: a
    little high until the next measurement, never low)."""
    began, since = now(), _since(stores.store, owner)
    measured = stores.storage_used(owner, every)

    def write(r: UsageRecord) -> None:
        r.stored_bytes, r.stored_since, r.measured_at = measured, r.stored_since - since, began

    return _change(stores.store, owner, write, lambda: UsageRecord(owner=owner)).stored


def _since(store: ObjectStore, owner: str) -> int:
    try:
        return read(store, owner).stored_since
    except NotFound:
        return 0


def owners(store: ObjectStore) -> list[str]:
    """Every owner that has kept anything under their folder (one listing of folder names)."""
    return store.folders(Keys.owners_prefix())


def claim_measure(store: ObjectStore, owner: str, every_s: float) -> bool:
    """Whether this sweeper measures the owner now: their measurement is older than `every_s`,
    and this compare-and-set is the one that moved `measured_at` (one sweeper per owner)."""
    def claim(r: UsageRecord) -> None:
        if r.measured_at is not None and (now() - r.measured_at).total_seconds() < every_s:
            raise cas.Skip
        r.measured_at = now()

    # No record yet (False): the owner's first storage check measures them.
    return cas.written(lambda c: cas.update(store, Keys.usage(owner), UsageRecord, c, f"usage of {owner!r}",
                                            take_turns=True), claim)


def _counts(job_id: str, reserved_at: datetime, still_active: Callable[[str], bool | None]) -> bool:
    """Whether a reserved id still counts: its job is unfinished, or its record is missing but
    was reserved within IN_FLIGHT_S (a submission writes the record just after reserving)."""
    active = still_active(job_id)
    if active is None:
        return (now() - reserved_at).total_seconds() < IN_FLIGHT_S
    return active


def _room_in(r: UsageRecord, used: int, asked: int, limits: Settings) -> int:
    """Seconds until enough of the window's work has left it for `asked`."""
    freed = 0
    for m in sorted(r.minutes):
        freed += r.minutes[m]
        if used - freed + asked <= limits.quota_training_pixels:
            return max(1, int((m + 1) * 60 + limits.quota_window_s - now().timestamp()) + 1)
    return limits.quota_window_s  # it asks for more than the whole window holds


def release(store: ObjectStore, owner: str, job_ids: Iterable[str]) -> None:
    """These jobs ended (or are gone): their ids leave the owner's active count."""
    if not owner:  # a job from before owners: never counted
        return
    gone = set(job_ids)

    def drop(r: UsageRecord) -> None:
        if not gone & set(r.active):
            raise cas.Skip
        r.active = {i: t for i, t in r.active.items() if i not in gone}

    try:
        cas.update(store, Keys.usage(owner), UsageRecord, drop, f"usage of {owner!r}", take_turns=True)
    except NotFound:  # an admin's job (not counted), or an owner from before usage records
        pass
