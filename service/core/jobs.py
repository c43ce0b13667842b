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
import random
import time
from collections.abc import Callable
from enum import Enum
from typing import TypeVar

from pydantic import BaseModel

from service.core import webhooks
from service.core.errors import Conflict, LostLease, NotFound
from service.core.keys import Keys, check_id
from service.core.records import Attempt, ExperimentRecord, JobRecord, JobState, StylizeRecord, now
from service.core.storage import ObjectNotFound, ObjectStore, VersionConflict

log = logging.getLogger(__name__)
R = TypeVar("R", bound=BaseModel)
JOBS, STYLIZATIONS = "jobs", "stylizations"  # the kinds of active markers
CURVE_POINTS = 200  # the loss curve in a record keeps about this many rows


class Skip(Exception):
    """Raised by a change that finds nothing to do: the record is left as it is."""


class Start(str, Enum):
    """What a worker that received a job should do."""

    run = "run"
    running_elsewhere = "running elsewhere"  # a fresh heartbeat: never run twice
    over = "over"  # final already, or just made final (cancelled, gave up)
    gone = "gone"  # deleted before it ran


class JobStore:
    def __init__(self, store: ObjectStore):
        self.store = store

    # --- the compare-and-set loop ---------------------------------------------------------

    def _read(self, key: str, model: type[R], what: str) -> tuple[R, str]:
        try:
            data, version = self.store.get_versioned(key)
        except ObjectNotFound:
            raise NotFound(f"no {what}") from None
        return model.model_validate_json(data), version

    def _update(self, key: str, model: type[R], change: Callable[[R], None], what: str) -> R:
        for attempt in range(100):
            record, version = self._read(key, model, what)
            try:
                change(record)
            except Skip:
                return record
            record.version += 1
            try:
                self.store.put_if(key, record.model_dump_json().encode(), version=version,
                                  content_type="application/json")
                return record
            except VersionConflict:
                time.sleep(random.uniform(0, 0.01 * min(attempt + 1, 10)))  # another writer won; again
        raise Conflict(f"{what} is being changed by too many writers at once; try again")

    def _list(self, prefix: str, name: str, model: type[R]) -> list[R]:
        records = []
        for key in [k for k in self.store.list(prefix) if k.endswith(f"/{name}")]:
            try:
                records.append(model.model_validate_json(self.store.get_bytes(key)))
            except ObjectNotFound:  # deleted meanwhile
                continue
        return sorted(records, key=lambda r: r.created_at, reverse=True)

    def _create(self, key: str, record: BaseModel) -> None:
        self.store.put_if(key, record.model_dump_json().encode(), version=None, content_type="application/json")

    # --- jobs -----------------------------------------------------------------------------

    def create(self, record: JobRecord) -> JobRecord:
        self._create(Keys.job(record.id), record)
        self.store.put_bytes(Keys.active(JOBS, record.id), b"")
        self._announce(record)
        return record

    def _announce(self, r: JobRecord) -> None:
        """A state change, to the job's webhook if it has one (through the outbox)."""
        if r.webhook_url:
            webhooks.enqueue(self.store, url=r.webhook_url, owner=r.owner, event={
                "type": "job.state", "job_id": r.id, "experiment_id": r.experiment_id, "state": r.state.value,
                "step": r.step, "steps": r.steps, "attempts": r.attempts, "error": r.error})

    def get(self, job_id: str, scope: str | None = None) -> JobRecord:
        """A job; with `scope` (an owner's id), only that owner's: another's is as missing."""
        return _visible(self._read(Keys.job(check_id(job_id, "job")), JobRecord, f"job {job_id!r}")[0], scope,
                        f"no job {job_id!r}")

    def update(self, job_id: str, change: Callable[[JobRecord], None]) -> JobRecord:
        before: list[JobState] = []

        def noting(r: JobRecord) -> None:
            before[:] = [r.state]
            change(r)

        record = self._update(Keys.job(check_id(job_id, "job")), JobRecord, noting, f"job {job_id!r}")
        if before and record.state != before[0]:
            self._announce(record)
        return record

    def list(self, scope: str | None = None) -> list[JobRecord]:
        """Every job (of the owner `scope`, if given), newest first."""
        return [r for r in self._list("jobs", "job.json", JobRecord) if scope is None or r.owner == scope]

    def delete(self, job_id: str) -> int:
        """The job's record, checkpoint, report, panel, and every stylisation made with it."""
        self.get(job_id)
        self.store.delete(Keys.active(JOBS, job_id))
        deleted = self.store.delete_prefix(Keys.job_prefix(job_id))
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

    def request_cancel(self, job_id: str, scope: str | None = None) -> JobRecord:
        """A queued job is cancelled at once; a running one is flagged, and its supervisor
        stops it at its next heartbeat."""
        def change(r: JobRecord) -> None:
            _visible(r, scope, f"no job {job_id!r}")
            if r.final:
                raise Conflict(f"job {job_id} has already {r.state.value}")
            r.cancel_requested_at = r.cancel_requested_at or now()
            if r.state == JobState.queued:
                r.move(JobState.cancelled)

        record = self.update(job_id, change)
        self._finished(JOBS, record)
        return record

    def fail_unqueued(self, job_id: str, reason: str) -> JobRecord:
        record = self.update(job_id, lambda r: r.move(JobState.failed, error=reason))
        self._finished(JOBS, record)
        return record

    # --- what a worker does with a job ------------------------------------------------------

    def start_attempt(self, job_id: str, *, worker: str, max_attempts: int,
                      stale_after_s: float) -> tuple[Start, JobRecord | None]:
        """Decide, atomically, whether this worker runs the job now, and if so begin an attempt."""
        decision = [Start.run]

        def change(r: JobRecord) -> None:
            if r.final:
                decision[0] = Start.over
                raise Skip
            if r.state == JobState.running and not r.stale(stale_after_s):
                decision[0] = Start.running_elsewhere
                raise Skip
            if r.state == JobState.running:  # its worker died and no sweeper requeued it yet
                r.end_attempt("requeued", "its worker stopped sending heartbeats")
                r.move(JobState.queued)
            if r.cancel_requested_at is not None:
                decision[0] = Start.over
                r.move(JobState.cancelled)
                return
            if r.counted_attempts >= max_attempts:
                decision[0] = Start.over
                last = r.attempt.reason if r.attempt and r.attempt.reason else "each ended without finishing"
                r.move(JobState.failed, error=f"gave up after {max_attempts} attempts, the last at step {r.step}: {last}")
                return
            decision[0] = Start.run
            r.move(JobState.running, error=None)
            r.attempts += 1
            r.error = None
            r.started_at = r.started_at or now()
            r.heartbeat_at = now()
            r.history.append(Attempt(number=r.attempts, worker=worker, start_step=r.step))

        try:
            record = self.update(job_id, change)
        except NotFound:
            return Start.gone, None
        self._finished(JOBS, record)
        return decision[0], record

    def _guard(self, r: JobRecord, attempt: int) -> None:
        if r.state != JobState.running or r.attempts != attempt:
            raise LostLease(f"job {r.id} is {r.state.value} at attempt {r.attempts}, not running attempt {attempt}")

    def heartbeat(self, job_id: str, attempt: int, progress: dict | None = None) -> JobRecord:
        """Renew the attempt's lease and record the child's latest progress. LostLease if the
        job was requeued, cancelled or deleted meanwhile."""
        def change(r: JobRecord) -> None:
            self._guard(r, attempt)
            r.heartbeat_at = now()
            if progress:
                apply_progress(r, progress)

        try:
            return self.update(job_id, change)
        except NotFound:
            raise LostLease(f"job {job_id} was deleted") from None

    def end_attempt(self, job_id: str, attempt: int, state: JobState, *, reason: str | None = None,
                    result: Callable[[JobRecord], None] | None = None, counted: bool = True) -> JobRecord:
        """The attempt is over: final (succeeded, failed, cancelled) or back on the queue
        (`counted=False`: not against the attempt limit, as when its worker shuts down)."""
        def change(r: JobRecord) -> None:
            self._guard(r, attempt)
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
        requeued = [False]

        def change(r: JobRecord) -> None:
            requeued[0] = False
            if r.state != JobState.running or not r.stale(stale_after_s):
                raise Skip
            r.end_attempt("requeued", f"its worker stopped sending heartbeats for {stale_after_s:.0f} s")
            r.requeued_at = now()
            r.move(JobState.queued)
            requeued[0] = True

        try:
            self.update(job_id, change)
        except NotFound:
            return False
        return requeued[0]

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

    def content_set_meta(self, set_id: str, scope: str | None = None) -> dict:
        try:
            meta = json.loads(self.store.get_bytes(Keys.content_meta(check_id(set_id, "content set"))))
        except ObjectNotFound:
            raise NotFound(f"no content set {set_id!r}") from None
        if scope is not None and meta.get("owner", "") != scope:
            raise NotFound(f"no content set {set_id!r}")
        return meta

    def list_styles(self, scope: str | None = None) -> list[dict]:
        """Every style's description (id, width, height, name, created_at), newest first."""
        metas = []
        for key in [k for k in self.store.list("styles") if k.endswith("/style.png")]:
            try:
                metas.append(self.style_meta(key.split("/")[1], scope))
            except NotFound:  # another owner's, or deleted meanwhile
                continue
        return sorted(metas, key=lambda m: m["created_at"] or "", reverse=True)

    def list_content_sets(self, scope: str | None = None) -> list[dict]:
        metas = []
        for key in [k for k in self.store.list("contents") if k.endswith("/meta.json")]:
            try:
                metas.append({"id": key.split("/")[1], **self.content_set_meta(key.split("/")[1], scope)})
            except NotFound:
                continue
        return sorted(metas, key=lambda m: m.get("created_at") or "", reverse=True)

    def storage_used(self, owner: str) -> int:
        """Bytes an owner's styles, content sets, jobs (checkpoints, outputs) and stylisations take."""
        total = sum(self.store.usage(Keys.style_prefix(m["id"])) for m in self.list_styles(owner))
        total += sum(self.store.usage(Keys.content_set_prefix(m["id"])) for m in self.list_content_sets(owner))
        total += sum(self.store.usage(Keys.job_prefix(r.id)) for r in self.list(owner))
        return total + sum(self.store.usage(Keys.stylize_prefix(r.id)) for r in self.list_stylizations()
                           if r.owner == owner)

    def _refuse_if_used(self, what: str, item_id: str, uses: Callable[[JobRecord], bool]) -> None:
        users = [j.id for j in self.list() if uses(j) and not j.final]
        if users:
            raise Conflict(f"{what} {item_id} is used by unfinished job(s) {', '.join(users)}; "
                           "cancel them or wait for them to end")

    def delete_style(self, style_id: str, scope: str | None = None) -> int:
        """A style no unfinished job uses (finished networks keep theirs: checkpoints carry it)."""
        self.style_meta(style_id, scope)
        self._refuse_if_used("style", style_id, lambda j: j.style_id == style_id)
        return self.store.delete_prefix(Keys.style_prefix(style_id))

    def delete_content_set(self, set_id: str, scope: str | None = None) -> int:
        self.content_set_meta(set_id, scope)
        self._refuse_if_used("content set", set_id, lambda j: j.content_set_id == set_id)
        return self.store.delete_prefix(Keys.content_set_prefix(set_id))

    # --- experiments ----------------------------------------------------------------------

    def create_experiment(self, record: ExperimentRecord) -> ExperimentRecord:
        self._create(Keys.experiment(record.id), record)
        return record

    def get_experiment(self, experiment_id: str, scope: str | None = None) -> ExperimentRecord:
        key = Keys.experiment(check_id(experiment_id, "experiment"))
        return _visible(self._read(key, ExperimentRecord, f"experiment {experiment_id!r}")[0], scope,
                        f"no experiment {experiment_id!r}")

    def delete_experiment(self, experiment_id: str, scope: str | None = None) -> int:
        exp = self.get_experiment(experiment_id, scope)
        running = [v["decoder"] for v in exp.variants if not self._final_or_gone(v["job_id"])]
        if running:
            raise Conflict(f"variant(s) {', '.join(running)} still running; cancel them first")
        deleted = sum(self.delete(v["job_id"]) for v in exp.variants if self._exists(v["job_id"]))
        return deleted + self.store.delete_prefix(Keys.experiment_prefix(exp.id))

    def _exists(self, job_id: str) -> bool:
        return self.store.exists(Keys.job(job_id))

    def _final_or_gone(self, job_id: str) -> bool:
        try:
            return self.get(job_id).final
        except NotFound:
            return True

    def list_experiments(self, scope: str | None = None) -> list[ExperimentRecord]:
        return [e for e in self._list("experiments", "experiment.json", ExperimentRecord)
                if scope is None or e.owner == scope]

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

    def start_stylize(self, request_id: str, *, max_attempts: int, stale_after_s: float) -> tuple[Start, StylizeRecord | None]:
        decision = [Start.run]

        def change(r: StylizeRecord) -> None:
            if r.final:
                decision[0] = Start.over
                raise Skip
            if r.state == JobState.running and not r.stale(stale_after_s):
                decision[0] = Start.running_elsewhere  # a duplicate delivery
                raise Skip
            if r.attempts >= max_attempts:
                decision[0] = Start.over
                r.move(JobState.failed, error=f"gave up after {max_attempts} attempts: each ended without finishing")
                return
            decision[0] = Start.run
            if r.state == JobState.running:
                r.move(JobState.queued)
            r.move(JobState.running)
            r.attempts += 1
            r.heartbeat_at = now()

        try:
            record = self.update_stylize(request_id, change)
        except NotFound:
            return Start.gone, None
        return decision[0], record

    def stylize_heartbeat(self, request_id: str, attempt: int) -> None:
        def change(r: StylizeRecord) -> None:
            if r.state != JobState.running or r.attempts != attempt:
                raise LostLease(f"stylization {request_id} is {r.state.value}")
            r.heartbeat_at = now()

        try:
            self.update_stylize(request_id, change)
        except NotFound:
            raise LostLease(f"stylization {request_id} was deleted") from None

    def requeue_stylize_if_stale(self, request_id: str, *, stale_after_s: float, max_attempts: int) -> bool:
        """The sweeper's change for stylisations: a dead worker's request is queued again, or
        fails with the reason after the attempt limit. True if it should be sent again."""
        requeued = [False]

        def change(r: StylizeRecord) -> None:
            requeued[0] = False
            if r.state != JobState.running or not r.stale(stale_after_s):
                raise Skip
            if r.attempts >= max_attempts:
                r.move(JobState.failed, error=f"gave up after {max_attempts} attempts: its worker stopped each time")
            else:
                r.move(JobState.queued)
                requeued[0] = True

        try:
            self.update_stylize(request_id, change)
        except NotFound:
            return False
        return requeued[0]


def _visible(record: R, scope: str | None, missing: str) -> R:
    """Another owner's record is as missing as one that never was: a 404, never a 403."""
    if scope is not None and record.owner != scope:
        raise NotFound(missing)
    return record


def apply_progress(r: JobRecord, progress: dict) -> None:
    """The child's progress file (service/core/protocol.py) into the record: step, latest
    losses and probe scores, speed, and thinned curves."""
    if progress.get("losses") and progress["step"] != r.step and (
            progress["step"] % max(1, r.steps // CURVE_POINTS) == 0 or progress["step"] == r.steps):
        r.loss_curve.append({"step": progress["step"], **progress["losses"]})
    probe = progress.get("artifacts") or {}
    if probe and (not r.artifact_curve or r.artifact_curve[-1]["step"] != probe["step"]):
        r.artifact_curve.append(probe)
    r.step = progress["step"]
    if progress.get("start_step") is not None and r.attempt is not None:
        r.attempt.start_step = progress["start_step"]
        r.resumed_from_step = progress["start_step"] or None
    r.losses = progress.get("losses") or r.losses
    r.artifacts = {k: v for k, v in probe.items() if k != "step"} or r.artifacts
    r.seconds_per_step = progress.get("seconds_per_step") or r.seconds_per_step
