"""Every read and change of a job, stylisation or experiment record, in one place.

A change is a function applied to the record as last read, written back only if nobody
wrote it meanwhile (the store's compare-and-set on the object's version); on a conflict the
record is read again and the change applied again. So the worker's progress, the API's
cancel and the sweeper's requeue never lose each other's updates. Every state change goes
through `_Record.move`, the state machine in service/core/records.py.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from pydantic import BaseModel

from service.core import cas, lease, usage, webhooks
from service.core.cas import Skip
from service.core.lease import Start
from service.core.content_sets import ContentSetRecord, ContentSetState, Manifest
from service.core.errors import Conflict, LostLease, NotFound
from service.core.keys import Keys, check_id
from service.core.protocol import TrainProgress
from service.core.records import Attempt, ExperimentRecord, JobRecord, JobState, StylizeRecord, now
from service.core.storage import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)
R = TypeVar("R", bound=BaseModel)
JOBS, STYLIZATIONS = "jobs", "stylizations"  # the kinds of active markers
EXPERIMENTS = "experiments"  # with JOBS, the kinds of the list index
READERS = 16  # records of one page read at once (S3 answers each GET in milliseconds)
WALK_PAGE = 1000  # index entries per listing when every record is wanted
CURVE_POINTS = 200  # the loss curve in a record keeps about this many rows


class JobStore:
    def __init__(self, store: ObjectStore):
        self.store = store
        self._index_ready = False

    # --- the compare-and-set loop ---------------------------------------------------------

    def _read(self, key: str, model: type[R], what: str) -> tuple[R, str]:
        return cas.read(self.store, key, model, what)

    def _update(self, key: str, model: type[R], change: Callable[[R], None], what: str) -> R:
        return cas.update(self.store, key, model, change, what)

    def _list(self, prefix: str, name: str, model: type[R]) -> list[R]:
        """Every record under `prefix`, newest first: every key listed, every record read."""
        records = self._read_many([k for k in self.store.list(prefix) if k.endswith(f"/{name}")], model)
        return sorted(records, key=lambda r: r.created_at, reverse=True)

    def _read_many(self, keys: list[str], model: type[R]) -> list[R]:
        """These records, in this order, a few at a time; one deleted meanwhile is left out."""
        def read(key: str) -> R | None:
            try:
                return model.model_validate_json(self.store.get_bytes(key))
            except ObjectNotFound:
                return None

        if len(keys) <= 1:
            found = [read(k) for k in keys]
        else:
            with ThreadPoolExecutor(max_workers=min(READERS, len(keys))) as pool:
                found = list(pool.map(read, keys))
        return [r for r in found if r is not None]

    def _create(self, key: str, record: BaseModel) -> None:
        cas.create(self.store, key, record)

    # --- the list index -------------------------------------------------------------------
    # One empty marker per job and experiment (service/core/keys.py, Keys.index_*), named so
    # that key order is newest first: a page of a list is one short listing of the index and
    # then only that page's records. Entries are written before the record and removed after
    # it, so a record is never missing from the index; an entry whose record is gone (deleted
    # meanwhile, or a create or delete that stopped halfway) is skipped.

    def _index(self, kind: str, record: JobRecord | ExperimentRecord) -> None:
        for entry in Keys.index_entries(kind, record.created_at, record.id, record.owner):
            self.store.put_bytes(entry, b"")

    def _unindex(self, kind: str, record: JobRecord | ExperimentRecord) -> None:
        for entry in Keys.index_entries(kind, record.created_at, record.id, record.owner):
            self.store.delete(entry)

    def _page(self, kind: str, record_key: Callable[[str], str], model: type[R], scope: str | None, limit: int,
              cursor: str | None) -> tuple[list[R], str | None]:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.ensure_index()
        after = Keys.index_after(kind, scope, cursor) if cursor is not None else None
        entries = self.store.list_page(Keys.index_prefix(kind, scope), after=after, limit=limit + 1)
        more, entries = len(entries) > limit, entries[:limit]
        records = self._read_many([record_key(Keys.index_item_id(e)) for e in entries], model)
        return ([r for r in records if scope is None or r.owner == scope],
                Keys.index_cursor(entries[-1]) if more else None)

    def _walk(self, kind: str, record_key: Callable[[str], str], model: type[R], scope: str | None) -> Iterator[R]:
        cursor: str | None = None
        while True:
            records, cursor = self._page(kind, record_key, model, scope, WALK_PAGE, cursor)
            yield from records
            if cursor is None:
                return

    def ensure_index(self) -> None:
        """Index the records written before there was an index, once (when the index's version
        marker is missing); then nothing but one existence check per process."""
        if self._index_ready:
            return
        if not self.store.exists(Keys.index_version()):
            counts = self.rebuild_index()
            log.info("list index rebuilt: %s entries added", counts)
        self._index_ready = True

    def rebuild_index(self) -> dict[str, int]:
        """Every job's and experiment's index entries, written where missing (every record is
        read: a one-shot migration); then the version marker. Safe to run again, and
        beside the API's own writes (an entry for a record deleted meanwhile is skipped)."""
        added = {}
        for kind, prefix, name, model in ((JOBS, "jobs", "job.json", JobRecord),
                                          (EXPERIMENTS, "experiments", "experiment.json", ExperimentRecord)):
            have = set(self.store.list(Keys.index_root(kind)))
            missing = []
            for record in self._list(prefix, name, model):
                try:
                    missing += [e for e in Keys.index_entries(kind, record.created_at, record.id, record.owner)
                                if e not in have]
                except NotFound:  # an id (or owner) we could not have made: not listable
                    log.warning("not indexed: %s %r of owner %r", kind, record.id, record.owner)
            for entry in missing:
                self.store.put_bytes(entry, b"")
            added[kind] = len(missing)
        self.store.put_bytes(Keys.index_version(), b"1\n", content_type="text/plain")
        self._index_ready = True
        return added

    # --- jobs -----------------------------------------------------------------------------

    def create(self, record: JobRecord) -> JobRecord:
        self._index(JOBS, record)
        self._announce(record)
        self._create(Keys.job(record.id), record)
        self.store.put_bytes(Keys.active(JOBS, record.id), b"")
        self.flush_events(record)
        return record

    # --- webhook events, written with the change that made them -------------------------------

    def _announce(self, r: JobRecord) -> None:
        """A state change, for the job's webhook if it has one: its event goes into the record
        (written by the caller's compare-and-set), marked first, so that whatever of the two
        writes a crash leaves, flush_pending finds the event or finds there is none."""
        if r.webhook_url:
            event = webhooks.job_event(r)
            self.store.put_bytes(Keys.webhook_pending(r.id, event["created_ns"], event["id"]), b"")
            r.pending_events.append(event)

    def flush_events(self, record: JobRecord) -> None:
        """The record's pending events into the outbox (once each), then out of the record, then
        their markers gone. A failure here leaves them to flush_pending."""
        if not record.pending_events:
            return
        try:
            for event in record.pending_events:
                webhooks.enqueue(self.store, url=record.webhook_url, owner=record.owner, event=event)
            moved = {e["id"] for e in record.pending_events}

            def drop(r: JobRecord) -> None:
                if not any(e["id"] in moved for e in r.pending_events):
                    raise Skip
                r.pending_events = [e for e in r.pending_events if e["id"] not in moved]

            self._update(Keys.job(record.id), JobRecord, drop, f"job {record.id!r}")
            for event in record.pending_events:
                self.store.delete(Keys.webhook_pending(record.id, event["created_ns"], event["id"]))
        except Exception as e:  # noqa: BLE001 - the change is made; its events wait for flush_pending
            log.warning("job %s: webhook events left for the next flush (%s)", record.id, e)

    def flush_pending(self, *, settle_s: float = 60.0) -> int:
        """What a crash left between a change and its outbox: every marked event still in its
        record is moved. A marker whose event is in no record is removed once `settle_s` old
        (its record's write lost a race and was tried again with a new event, or the process
        died before it): younger, its writer may still be between the two writes. Returns
        the events moved."""
        moved = 0
        markers: dict[str, list[str]] = {}
        for key in self.store.list(Keys.webhook_pending_prefix()):
            job_id = key.rsplit("/", 2)[1]
            markers.setdefault(job_id, []).append(key)
        for job_id, keys in markers.items():
            try:
                record = self.get(job_id)
            except NotFound:  # the job was deleted: so are its events
                for key in keys:
                    self.store.delete(key)
                continue
            pending = {e["id"] for e in record.pending_events}
            self.flush_events(record)
            moved += len(pending)
            for key in keys:
                created_ns, event_id = key.rsplit("/", 1)[1].split("-", 1)
                if event_id not in pending and time.time_ns() - int(created_ns) > settle_s * 1e9:
                    self.store.delete(key)
        return moved

    def get(self, job_id: str, scope: str | None = None) -> JobRecord:
        """A job; with `scope` (an owner's id), only that owner's: another's is as missing."""
        return _visible(self._read(Keys.job(check_id(job_id, "job")), JobRecord, f"job {job_id!r}")[0], scope,
                        f"no job {job_id!r}")

    def update(self, job_id: str, change: Callable[[JobRecord], None]) -> JobRecord:
        before: list[JobState] = []

        def noting(r: JobRecord) -> None:
            before[:] = [r.state]
            change(r)
            if r.state != before[0]:
                self._announce(r)

        record = self._update(Keys.job(check_id(job_id, "job")), JobRecord, noting, f"job {job_id!r}")
        self.flush_events(record)
        return record

    def list(self, scope: str | None = None, *, limit: int, cursor: str | None = None) -> tuple[list[JobRecord], str | None]:
        """One page of jobs (of the owner `scope`, if given), newest first, and the cursor of the
        next page (None: this is the last). Reads `limit` index entries and their records only."""
        return self._page(JOBS, Keys.job, JobRecord, scope, limit, cursor)

    def all_jobs(self, scope: str | None = None) -> Iterator[JobRecord]:
        """Every job (of the owner `scope`, if given), newest first, page by page: for what needs
        them all (quotas, storage used, metrics). Reads every record it yields."""
        return self._walk(JOBS, Keys.job, JobRecord, scope)

    def get_many(self, job_ids: list[str]) -> dict[str, JobRecord]:
        """These jobs, read a few at a time; a missing one is left out."""
        return {r.id: r for r in self._read_many([Keys.job(check_id(i, "job")) for i in job_ids], JobRecord)}

    def delete(self, job_id: str) -> int:
        """The job's record, checkpoint, report, panel, and every stylisation made with it."""
        record = self.get(job_id)
        self.store.delete(Keys.active(JOBS, job_id))
        usage.release(self.store, record.owner, [job_id])
        deleted = self.store.delete_prefix(Keys.job_prefix(job_id))
        self._unindex(JOBS, record)
        for request in self.list_stylizations():
            if request.job_id == job_id:
                self.store.delete(Keys.active(STYLIZATIONS, request.id))
                deleted += self.store.delete_prefix(Keys.stylize_prefix(request.id))
        return deleted

    def active_ids(self, kind: str = JOBS) -> list[str]:
        return [k.rsplit("/", 1)[1] for k in self.store.list(Keys.active_prefix(kind))]

    def _finished(self, kind: str, record: JobRecord | StylizeRecord) -> None:
        if record.final:
            self.store.delete(Keys.active(kind, record.id))
            if kind == JOBS:
                usage.release(self.store, record.owner, [record.id])

    def request_cancel(self, job_id: str, scope: str | None = None) -> JobRecord:
        """A queued job is cancelled at once; a running one is flagged, and its supervisor
        stops it at its next heartbeat."""
        record = self.update(job_id, lambda r: _ask_to_cancel(r, scope, "job", job_id))
        self._finished(JOBS, record)
        return record

    def fail_unqueued(self, job_id: str, reason: str) -> JobRecord:
        record = self.update(job_id, lambda r: r.move(JobState.failed, error=reason))
        self._finished(JOBS, record)
        return record

    # --- what a worker does with a job ------------------------------------------------------

    def fail_if_queued(self, job_id: str, reason: str) -> JobRecord:
        """A job that this worker can never run (it asks for more GPUs than the worker has)
        fails with the reason; one that has started or ended meanwhile is left as it is."""
        def change(r: JobRecord) -> None:
            if r.state != JobState.queued:
                raise Skip
            r.move(JobState.failed, error=reason)

        record = self.update(job_id, change)
        self._finished(JOBS, record)
        return record

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
        self._finished(JOBS, record)
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
            if state == JobState.queued:
                r.requeued_at = now()
            r.move(state, error=reason if state == JobState.failed else None)

        record = self.update(job_id, change)
        self._finished(JOBS, record)
        return record

    def requeue_if_stale(self, job_id: str, *, stale_after_s: float) -> bool:
        """The sweeper's change: a running job whose heartbeat stopped goes back to queued."""
        def change(r: JobRecord) -> None:
            if not lease.lapsed(r, stale_after_s):
                raise Skip
            r.end_attempt("requeued", f"its worker stopped sending heartbeats for {stale_after_s:.0f} s")
            r.requeued_at = now()
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
        written = [False]

        def tracked(r: JobRecord) -> None:
            written[0] = False  # a retry after a conflict starts again
            change(r)
            written[0] = True

        try:
            self.update(job_id, tracked)
        except NotFound:
            return False
        return written[0]

    # --- styles and content sets ----------------------------------------------------------

    def style_meta(self, style_id: str, scope: str | None = None) -> dict:
        """A style's description; NotFound if there is none (or it is another owner's)."""
        key = Keys.style_meta(check_id(style_id, "style"))
        try:
            meta = json.loads(self.store.get_bytes(key))
        except ObjectNotFound:
            if not self.store.exists(Keys.style(style_id)):
                raise NotFound(f"no style {style_id!r}") from None
            meta = {"id": style_id, "owner": "", "width": None, "height": None, "name": None, "created_at": None}
        if scope is not None and meta.get("owner", "") != scope:
            raise NotFound(f"no style {style_id!r}")
        return meta

    def style_exists(self, style_id: str, scope: str | None = None) -> bool:
        try:
            self.style_meta(style_id, scope)
            return True
        except NotFound:
            return False

    # Content sets: a ContentSetRecord at Keys.content_meta, changed only by compare-and-set
    # (the API creates and deletes it, the validating worker moves its progress and state).
    # A set uploaded before records had states has a plain dict there: it reads as ready.

    def _content_set_key(self, set_id: str) -> str:
        return Keys.content_meta(check_id(set_id, "content set"))

    def create_content_set(self, record: ContentSetRecord) -> ContentSetRecord:
        self._create(self._content_set_key(record.id), record)
        return record

    def get_content_set(self, set_id: str, scope: str | None = None) -> ContentSetRecord:
        """A content set's record; with `scope`, only that owner's (another's is as missing)."""
        try:
            data = self.store.get_bytes(self._content_set_key(set_id))
        except ObjectNotFound:
            raise NotFound(f"no content set {set_id!r}") from None
        return _visible(_content_set(set_id, data), scope, f"no content set {set_id!r}")

    def update_content_set(self, set_id: str, change: Callable[[ContentSetRecord], None]) -> ContentSetRecord:
        """Apply `change` to the set's record as a compare-and-set (raise Skip in it to leave the
        record as it is). NotFound once the set is deleted: a worker validating it must then
        stop and remove what it wrote under Keys.content_set_prefix."""
        def changed(r: ContentSetRecord) -> None:
            change(r)
            r.updated_at = now()

        return self._update(self._content_set_key(set_id), ContentSetRecord, changed, f"content set {set_id!r}")

    def ready_content_set(self, set_id: str, scope: str | None = None) -> ContentSetRecord:
        """A set jobs may train on: Conflict (409) while it is validating or once it failed."""
        record = self.get_content_set(set_id, scope)
        if record.state != ContentSetState.ready:
            raise Conflict(record.describe_not_ready())
        return record

    def put_manifest(self, set_id: str, manifest: Manifest) -> None:
        self.store.put_bytes(Keys.content_manifest(check_id(set_id, "content set")),
                             manifest.model_dump_json().encode(), content_type="application/json")

    def get_manifest(self, set_id: str) -> Manifest:
        try:
            return Manifest.model_validate_json(self.store.get_bytes(Keys.content_manifest(check_id(set_id, "content set"))))
        except ObjectNotFound:
            raise NotFound(f"content set {set_id!r} has no manifest") from None

    def list_styles(self, scope: str | None = None) -> list[dict]:
        """Every style's description (id, width, height, name, created_at), newest first."""
        metas = []
        for key in [k for k in self.store.list("styles") if k.endswith("/style.png")]:
            try:
                metas.append(self.style_meta(key.split("/")[1], scope))
            except NotFound:  # another owner's, or deleted meanwhile
                continue
        return sorted(metas, key=lambda m: m["created_at"] or "", reverse=True)

    def list_content_sets(self, scope: str | None = None) -> list[ContentSetRecord]:
        """Every content set's record (of the owner `scope`, if given), newest first."""
        # One folder per set: listed without the (maybe millions of) members in them.
        sets = []
        for set_id in self.store.folders("contents"):
            try:
                record = _content_set(set_id, self.store.get_bytes(Keys.content_meta(check_id(set_id, "content set"))))
            except (ObjectNotFound, NotFound):  # deleted meanwhile (or half-made), or not a set's folder
                continue
            if scope is None or record.owner == scope:
                sets.append(record)
        return sorted(sets, key=lambda r: r.created_at, reverse=True)

    def storage_used(self, owner: str) -> int:
        """Bytes an owner's styles, content sets, jobs (checkpoints, outputs) and stylisations take."""
        total = sum(self.store.usage(Keys.style_prefix(m["id"])) for m in self.list_styles(owner))
        total += sum(self.store.usage(Keys.content_set_prefix(r.id)) for r in self.list_content_sets(owner))
        total += sum(self.store.usage(Keys.job_prefix(r.id)) for r in self.all_jobs(owner))
        return total + sum(self.store.usage(Keys.stylize_prefix(r.id)) for r in self.list_stylizations()
                           if r.owner == owner)

    def _refuse_if_used(self, what: str, item_id: str, uses: Callable[[JobRecord], bool]) -> None:
        users = [j.id for j in self.all_jobs() if uses(j) and not j.final]
        if users:
            raise Conflict(f"{what} {item_id} is used by unfinished job(s) {', '.join(users)}; "
                           "cancel them or wait for them to end")

    def delete_style(self, style_id: str, scope: str | None = None) -> int:
        """A style no unfinished job uses (finished networks keep theirs: checkpoints carry it)."""
        self.style_meta(style_id, scope)
        self._refuse_if_used("style", style_id, lambda j: any(s["id"] == style_id for s in j.style_list))
        return self.store.delete_prefix(Keys.style_prefix(style_id))

    def delete_content_set(self, set_id: str, scope: str | None = None) -> int:
        """Our record, manifest, archive and unpacked members; a registered prefix's objects are
        the operator's and stay. A set still validating may go: its worker finds it gone."""
        self.get_content_set(set_id, scope)
        self._refuse_if_used("content set", set_id, lambda j: j.content_set_id == set_id)
        return self.store.delete_prefix(Keys.content_set_prefix(set_id))

    # --- experiments ----------------------------------------------------------------------

    def create_experiment(self, record: ExperimentRecord) -> ExperimentRecord:
        self._index(EXPERIMENTS, record)
        self._create(Keys.experiment(record.id), record)
        return record

    def get_experiment(self, experiment_id: str, scope: str | None = None) -> ExperimentRecord:
        key = Keys.experiment(check_id(experiment_id, "experiment"))
        return _visible(self._read(key, ExperimentRecord, f"experiment {experiment_id!r}")[0], scope,
                        f"no experiment {experiment_id!r}")

    def delete_experiment(self, experiment_id: str, scope: str | None = None) -> int:
        exp = self.get_experiment(experiment_id, scope)
        running = [v.get("label", v["decoder"]) for v in exp.variants
                   if not all(self._final_or_gone(j) for j in exp.runs(v))]
        if running:
            raise Conflict(f"variant(s) {', '.join(running)} still running; cancel them first")
        deleted = sum(self.delete(j) for j in exp.job_ids if self._exists(j))
        deleted += self.store.delete_prefix(Keys.experiment_prefix(exp.id))
        self._unindex(EXPERIMENTS, exp)
        return deleted

    def _exists(self, job_id: str) -> bool:
        return self.store.exists(Keys.job(job_id))

    def _final_or_gone(self, job_id: str) -> bool:
        try:
            return self.get(job_id).final
        except NotFound:
            return True

    def list_experiments(self, scope: str | None = None, *, limit: int,
                         cursor: str | None = None) -> tuple[list[ExperimentRecord], str | None]:
        """One page of experiments, newest first, and the next page's cursor (as `list`)."""
        return self._page(EXPERIMENTS, Keys.experiment, ExperimentRecord, scope, limit, cursor)

    # --- stylisations ---------------------------------------------------------------------

    def create_stylize(self, record: StylizeRecord) -> StylizeRecord:
        self._create(Keys.stylize(record.id), record)
        self.store.put_bytes(Keys.active(STYLIZATIONS, record.id), b"")
        return record

    def get_stylize(self, request_id: str, scope: str | None = None) -> StylizeRecord:
        key = Keys.stylize(check_id(request_id, "stylization"))
        return _visible(self._read(key, StylizeRecord, f"stylization {request_id!r}")[0], scope,
                        f"no stylization {request_id!r}")

    def update_stylize(self, request_id: str, change: Callable[[StylizeRecord], None]) -> StylizeRecord:
        record = self._update(Keys.stylize(check_id(request_id, "stylization")), StylizeRecord, change,
                              f"stylization {request_id!r}")
        self._finished(STYLIZATIONS, record)
        return record

    def list_stylizations(self) -> list[StylizeRecord]:
        return self._list("stylizations", "request.json", StylizeRecord)

    def delete_old_stylizations(self, *, older_than_s: float) -> list[str]:
        """Retention: finished stylisations (inputs, outputs, record) older than this go."""
        gone = []
        for r in self.list_stylizations():
            if r.final and r.finished_at and (now() - r.finished_at).total_seconds() > older_than_s:
                self.store.delete_prefix(Keys.stylize_prefix(r.id))
                gone.append(r.id)
        return gone

    def request_cancel_stylize(self, request_id: str, scope: str | None = None) -> StylizeRecord:
        """A queued stylisation is cancelled at once; a running one is flagged, and its worker
        stops it at its next heartbeat (workers/supervisor.py run_stylize)."""
        return self.update_stylize(request_id, lambda r: _ask_to_cancel(r, scope, "stylization", request_id))

    def start_stylize(self, request_id: str, *, max_attempts: int, stale_after_s: float) -> tuple[Start, StylizeRecord | None]:
        """Whether this worker runs the stylisation now (service/core/lease.py)."""
        decision = [Start.run]

        def change(r: StylizeRecord) -> None:
            decision[0], changed = lease.begin(r, used=r.attempts, max_attempts=max_attempts,
                                               stale_after_s=stale_after_s, why=lambda: "each ended without finishing")
            if not changed:
                raise Skip

        try:
            record = self.update_stylize(request_id, change)
        except NotFound:
            return Start.gone, None
        return decision[0], record

    def stylize_heartbeat(self, request_id: str, attempt: int, progress: dict[str, int] | None = None) -> StylizeRecord:
        """The lease renewed (and a video's progress noted); the record tells of a cancel."""
        def change(r: StylizeRecord) -> None:
            lease.renew(r, attempt, "stylization")
            if progress:
                r.progress = dict(progress)

        try:
            return self.update_stylize(request_id, change)
        except NotFound:
            raise LostLease(f"stylization {request_id} was deleted") from None

    def requeue_stylize_if_stale(self, request_id: str, *, stale_after_s: float, max_attempts: int) -> bool:
        """The sweeper's change for stylisations: a dead worker's request is queued again, or
        fails with the reason after the attempt limit. True if it should be sent again."""
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
            self.update_stylize(request_id, change)
        except NotFound:
            return False
        return requeued[0]


def _ask_to_cancel(r: JobRecord | StylizeRecord, scope: str | None, what: str, record_id: str) -> None:
    """A cancel, for jobs and stylisations alike: a queued one ends at once, a running one is
    flagged for its worker; a finished one is a conflict."""
    _visible(r, scope, f"no {what} {record_id!r}")
    if r.final:
        raise Conflict(f"{what} {record_id} has already {r.state.value}")
    r.cancel_requested_at = r.cancel_requested_at or now()
    if r.state == JobState.queued:
        r.move(JobState.cancelled)


def _visible(record: R, scope: str | None, missing: str) -> R:
    """Another owner's record is as missing as one that never was: a 404, never a 403."""
    if scope is not None and record.owner != scope:
        raise NotFound(missing)
    return record


def _content_set(set_id: str, data: bytes) -> ContentSetRecord:
    """A stored set record; legacy sets (a dict of count, names, skipped) read as ready."""
    raw = json.loads(data)
    raw["id"] = set_id
    if "state" not in raw:  # made before states: images it listed under content_prefix
        raw["skipped"] = [{"name": s.get("file", s.get("name", "")), "reason": s.get("reason", "")}
                          for s in raw.get("skipped", [])]
    return ContentSetRecord.model_validate(raw)


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
