"""Job records: JSON objects in the store, the source of truth (not Celery's results).

One writer per object: the API creates a record and may add the cancel flag (its own
object); from then on only the worker that runs the job rewrites the record. Every key is
built here, from ids we made (uuid4 hex), never from user text.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from enum import Enum

from pydantic import BaseModel, Field

from service.storage import ObjectNotFound, ObjectStore


class JobState(str, Enum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


FINAL_STATES = {JobState.succeeded, JobState.failed, JobState.cancelled}


def now() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    return uuid.uuid4().hex


class NotFound(LookupError):
    """No such job, style, content set or stylisation; the message names what is missing."""


class JobRecord(BaseModel):
    id: str
    state: JobState = JobState.queued
    created_at: datetime = Field(default_factory=now)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None  # refreshed by the worker running the job
    requeued_at: datetime | None = None  # when a sweeper last put it back on the queue
    config: dict  # models.config.TrainConfig as a dict
    style_id: str
    content_set_id: str | None = None  # None: the built-in photographs
    experiment_id: str | None = None
    step: int = 0
    steps: int
    losses: dict[str, float] = Field(default_factory=dict)  # latest
    artifacts: dict[str, float] = Field(default_factory=dict)  # latest probe scores (dB)
    seconds_per_step: float | None = None
    attempts: int = 0
    resumed_from_step: int | None = None  # the checkpoint step the latest attempt started from
    error: str | None = None
    outputs: dict[str, str] = Field(default_factory=dict)  # name -> store key
    loss_curve: list[dict[str, float]] = Field(default_factory=list)  # step, loss, content, style, tv (<= ~200 rows)
    artifact_curve: list[dict[str, float]] = Field(default_factory=list)  # step, artifact_p2, artifact_p4
    panel: list[dict] = Field(default_factory=list)  # the fixed photos stylised at the end: name, key, scores

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


class StylizeRecord(BaseModel):
    id: str
    job_id: str
    state: JobState = JobState.queued
    created_at: datetime = Field(default_factory=now)
    finished_at: datetime | None = None
    inputs: list[str]  # store keys
    outputs: list[str] = Field(default_factory=list)
    sizes: list[tuple[int, int]] = Field(default_factory=list)  # (width, height) per input
    error: str | None = None


class ExperimentRecord(BaseModel):
    """Paired jobs that differ only in the decoder (same seed: same shared initial weights
    and data order; same settings otherwise)."""

    id: str
    created_at: datetime = Field(default_factory=now)
    style_id: str
    content_set_id: str | None = None
    settings: dict  # the shared settings, without the decoder
    variants: list[dict]  # {"decoder": label, "job_id": id}


class Keys:
    """Every storage key, in one place."""

    @staticmethod
    def style(style_id: str) -> str:
        return f"styles/{style_id}/style.png"

    @staticmethod
    def content_prefix(set_id: str) -> str:
        return f"contents/{set_id}/images"

    @staticmethod
    def content_image(set_id: str, index: int) -> str:
        return f"contents/{set_id}/images/{index:05d}.png"

    @staticmethod
    def content_meta(set_id: str) -> str:
        return f"contents/{set_id}/meta.json"

    @staticmethod
    def job_prefix(job_id: str) -> str:
        return f"jobs/{job_id}"

    @staticmethod
    def job(job_id: str) -> str:
        return f"jobs/{job_id}/job.json"

    @staticmethod
    def cancel(job_id: str) -> str:
        return f"jobs/{job_id}/cancel"

    @staticmethod
    def checkpoint(job_id: str) -> str:
        return f"jobs/{job_id}/checkpoint/last.ckpt"

    @staticmethod
    def report(job_id: str) -> str:
        return f"jobs/{job_id}/report.json"

    @staticmethod
    def preview(job_id: str) -> str:
        return f"jobs/{job_id}/preview.png"

    @staticmethod
    def panel(job_id: str, name: str) -> str:
        return f"jobs/{job_id}/panel/{name}.png"

    @staticmethod
    def experiment(experiment_id: str) -> str:
        return f"experiments/{experiment_id}/experiment.json"

    @staticmethod
    def experiment_cache(experiment_id: str, name: str) -> str:
        return f"experiments/{experiment_id}/cache/{name}"

    @staticmethod
    def active(job_id: str) -> str:
        return f"active/{job_id}"

    @staticmethod
    def stylize_prefix(request_id: str) -> str:
        return f"stylizations/{request_id}"

    @staticmethod
    def stylize(request_id: str) -> str:
        return f"stylizations/{request_id}/request.json"

    @staticmethod
    def stylize_input(request_id: str, index: int) -> str:
        return f"stylizations/{request_id}/input-{index:03d}.png"

    @staticmethod
    def stylize_output(request_id: str, index: int) -> str:
        return f"stylizations/{request_id}/output-{index:03d}.png"


def _check_id(value: str, what: str) -> str:
    if not (len(value) == 32 and all(c in "0123456789abcdef" for c in value)):
        raise NotFound(f"no {what} {value!r}")
    return value


class JobStore:
    """Reads and writes records; the one place that knows how they are stored."""

    def __init__(self, store: ObjectStore):
        self.store = store

    # jobs
    def save(self, record: JobRecord) -> JobRecord:
        self.store.put_bytes(Keys.job(record.id), record.model_dump_json().encode(), content_type="application/json")
        return record

    def create(self, record: JobRecord) -> JobRecord:
        self.save(record)
        self.store.put_bytes(Keys.active(record.id), b"")
        return record

    def get(self, job_id: str) -> JobRecord:
        try:
            return JobRecord.model_validate_json(self.store.get_bytes(Keys.job(_check_id(job_id, "job"))))
        except ObjectNotFound:
            raise NotFound(f"no job {job_id!r}") from None

    def list(self) -> list[JobRecord]:
        keys = [k for k in self.store.list("jobs") if k.endswith("/job.json")]
        records = []
        for k in keys:
            try:
                records.append(JobRecord.model_validate_json(self.store.get_bytes(k)))
            except ObjectNotFound:  # deleted meanwhile
                continue
        return sorted(records, key=lambda r: r.created_at, reverse=True)

    def delete(self, job_id: str) -> int:
        """The job's record, checkpoint, report, panel, and every stylisation made with it."""
        self.get(job_id)
        self.store.delete(Keys.active(job_id))
        deleted = self.store.delete_prefix(Keys.job_prefix(job_id))
        for key in [k for k in self.store.list("stylizations") if k.endswith("/request.json")]:
            try:
                request = StylizeRecord.model_validate_json(self.store.get_bytes(key))
            except ObjectNotFound:
                continue
            if request.job_id == job_id:
                deleted += self.store.delete_prefix(Keys.stylize_prefix(request.id))
        return deleted

    def request_cancel(self, job_id: str) -> None:
        self.store.put_bytes(Keys.cancel(_check_id(job_id, "job")), now().isoformat().encode())

    def cancel_requested(self, job_id: str) -> bool:
        return self.store.exists(Keys.cancel(job_id))

    def finish(self, record: JobRecord, state: JobState, *, error: str | None = None) -> JobRecord:
        record.state, record.error, record.finished_at = state, error, now()
        self.save(record)
        self.store.delete(Keys.active(record.id))
        return record

    def active_ids(self) -> list[str]:
        return [k.split("/", 1)[1] for k in self.store.list("active")]

    # styles and content sets
    def style_exists(self, style_id: str) -> bool:
        return self.store.exists(Keys.style(_check_id(style_id, "style")))

    def content_set_meta(self, set_id: str) -> dict:
        try:
            return json.loads(self.store.get_bytes(Keys.content_meta(_check_id(set_id, "content set"))))
        except ObjectNotFound:
            raise NotFound(f"no content set {set_id!r}") from None

    # experiments
    def save_experiment(self, record: ExperimentRecord) -> ExperimentRecord:
        self.store.put_bytes(Keys.experiment(record.id), record.model_dump_json().encode(), content_type="application/json")
        return record

    def get_experiment(self, experiment_id: str) -> ExperimentRecord:
        try:
            return ExperimentRecord.model_validate_json(
                self.store.get_bytes(Keys.experiment(_check_id(experiment_id, "experiment"))))
        except ObjectNotFound:
            raise NotFound(f"no experiment {experiment_id!r}") from None

    def delete_experiment(self, experiment_id: str) -> int:
        exp = self.get_experiment(experiment_id)
        deleted = sum(self.delete(v["job_id"]) for v in exp.variants)
        return deleted + self.store.delete_prefix(f"experiments/{exp.id}")

    def list_experiments(self) -> list[ExperimentRecord]:
        keys = [k for k in self.store.list("experiments") if k.endswith("/experiment.json")]
        return sorted((ExperimentRecord.model_validate_json(self.store.get_bytes(k)) for k in keys),
                      key=lambda r: r.created_at, reverse=True)

    # stylisations
    def save_stylize(self, record: StylizeRecord) -> StylizeRecord:
        self.store.put_bytes(Keys.stylize(record.id), record.model_dump_json().encode(), content_type="application/json")
        return record

    def get_stylize(self, request_id: str) -> StylizeRecord:
        try:
            return StylizeRecord.model_validate_json(self.store.get_bytes(Keys.stylize(_check_id(request_id, "stylization"))))
        except ObjectNotFound:
            raise NotFound(f"no stylization {request_id!r}") from None
