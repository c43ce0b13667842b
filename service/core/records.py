"""The stored shapes of jobs, stylisations and experiments, and the one state machine they
follow. Records are JSON objects in the store, the source of truth (not Celery's results);
service/core/stores/ is the only code that writes them."""

from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum

from pydantic import BaseModel, Field

from models.vocabulary import QUALITY_MEASURE, QUALITY_MEASURE_OLD
from service.core.errors import InvalidTransition
from service.core.keys import Keys


def now() -> datetime:
    return datetime.now(timezone.utc)




def measured_by(row: dict) -> str | None:
    """What measured a probe row's distances: None where it has none. Rows carry no label of
    their own; the probe that first measured by the yardstick (models/callbacks.py) is the one
    that added shift equivariance (eq_t1..), so a row with eq_t1 was measured by it, and one
    with distances but no eq_t1 was measured the old way."""
    if "style_distance" not in row and "content_distance" not in row:
        return None
    return QUALITY_MEASURE if "eq_t1" in row else QUALITY_MEASURE_OLD


class JobState(str, Enum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


FINAL_STATES = frozenset({JobState.succeeded, JobState.failed, JobState.cancelled})

# Where each state may go. running -> queued is a requeue (dead worker, killed child, a
# worker asked to stop); running -> running is progress and heartbeats. Final is final.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.queued: frozenset({JobState.running, JobState.cancelled, JobState.failed}),
    JobState.running: frozenset({JobState.running, JobState.queued, JobState.succeeded, JobState.failed,
                                 JobState.cancelled}),
    JobState.succeeded: frozenset(),
    JobState.failed: frozenset(),
    JobState.cancelled: frozenset(),
}


class Attempt(BaseModel):
    """One try at running a job: when, by which worker, from which step, and how it ended."""

    number: int
    worker: str
    started_at: datetime = Field(default_factory=now)
    ended_at: datetime | None = None
    start_step: int = 0
    end_step: int | None = None
    outcome: str | None = None  # succeeded, failed, cancelled, requeued
    reason: str | None = None
    counted: bool = True  # against the attempt limit; not when its worker was merely asked to stop


class _Record(BaseModel):
    id: str
    owner: str = ""  # the API key owner's id ("": made before owners; only an admin sees it)
    state: JobState = JobState.queued
    version: int = 0  # bumped by every write: two writes of one record never look alike
    created_at: datetime = Field(default_factory=now)
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None  # refreshed by the worker running it
    error: str | None = None
    requeued_at: datetime | None = None  # when it last went back on the queue
    resent_at: datetime | None = None  # when the sweeper last sent its message again (lost, it judged)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def sent_at(self) -> datetime:
        """When its message was last sent: made, requeued or sent again by the sweeper."""
        return max(t for t in (self.created_at, self.requeued_at, self.resent_at) if t is not None)

    def move(self, state: JobState, *, error: str | None = None) -> None:
        """Change state by the state machine's rules (InvalidTransition otherwise)."""
        if state not in TRANSITIONS[self.state]:
            raise InvalidTransition(f"{type(self).__name__.removesuffix('Record').lower()} {self.id} is "
                                    f"{self.state.value}; it cannot become {state.value}")
        self.state = state
        if state == JobState.queued:  # back on the queue: a message is sent for it now
            self.requeued_at = now()
        if state in FINAL_STATES:
            self.finished_at, self.error = now(), error
        elif error is not None:
            self.error = error


class JobRecord(_Record):
    started_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    config: dict  # models.config.TrainConfig as a dict
    style_id: str  # the first style (the only one before jobs had several)
    # Every style, in the network's order: {"id": an uploaded style's id or "builtin:<name>", "name"}.
    # Empty in records made before jobs had several: `style_list` reads them as their one style_id.
    styles: list[dict] = Field(default_factory=list)
    content_set_id: str | None = None  # None: the built-in photographs
    experiment_id: str | None = None
    webhook_url: str | None = None  # state changes are POSTed here (service/core/webhooks.py)
    # Webhook events written by the change that made them, until moved to the outbox (each
    # also marked at Keys.webhook_pending: service/core/webhooks.py).
    pending_events: list[dict] = Field(default_factory=list)
    devices: int = 1  # GPUs (CPU processes) it trains on with DDP; not in config: not what it computes
    step: int = 0
    steps: int
    losses: dict[str, float] = Field(default_factory=dict)  # latest
    artifacts: dict[str, float] = Field(default_factory=dict)  # the probe's latest row, less its step
    # What the run computed in, as its worker reports it ("32-true" or "bf16-mixed": config's
    # precision "auto" resolved on that machine); None until reported, and in older records.
    trained_precision: str | None = None
    seconds_per_step: float | None = None
    attempts: int = 0  # started attempts; history holds each one
    history: list[Attempt] = Field(default_factory=list)
    resumed_from_step: int | None = None  # the checkpoint step the latest attempt started from
    # The stored checkpoint the job resumes from and serves: named by its attempt once stored,
    # while that attempt still holds the job (Jobs.name_checkpoint). None: none stored yet,
    # or a record from before checkpoints per attempt (checkpoint_key says where that one is).
    checkpoint: str | None = None
    outputs: dict[str, str] = Field(default_factory=dict)  # name -> store key
    loss_curve: list[dict[str, float]] = Field(default_factory=list)  # step, loss, content, style, tv (<= ~200 rows)
    # The probe's rows, as models/probe_row.py ProbeRow.to_dict() writes them: rows of older
    # jobs lack the measures added since (p8 and eq_t, or all but p2 and p4).
    artifact_curve: list[dict[str, float]] = Field(default_factory=list)
    panel: list[dict] = Field(default_factory=list)  # the fixed photos stylised at the end: name, key, scores
    # A several-style network's other styles on the same photos: style_panels[i - 1] is style i's panel.
    style_panels: list[list[dict]] = Field(default_factory=list)

    @property
    def attempt(self) -> Attempt | None:
        return self.history[-1] if self.history else None

    @property
    def style_list(self) -> list[dict]:
        return self.styles or [{"id": self.style_id, "name": None}]

    @property
    def quality_measure(self) -> str | None:
        """What measured the latest distances (measured_by); None before any were measured."""
        return measured_by(self.artifacts)

    @property
    def checkpoint_key(self) -> str:
        """Where the job's current checkpoint is (or would be, for a record from before
        checkpoints per attempt, which may have one there)."""
        return self.checkpoint or Keys.checkpoint(self.id)

    @property
    def counted_attempts(self) -> int:
        """Attempts that count against the limit: a job stopped for its worker's shutdown
        did nothing wrong."""
        return sum(a.counted for a in self.history)

    def end_attempt(self, outcome: str, reason: str | None = None, *, counted: bool = True) -> None:
        if self.attempt is not None and self.attempt.ended_at is None:
            self.attempt.ended_at, self.attempt.end_step = now(), self.step
            self.attempt.outcome, self.attempt.reason, self.attempt.counted = outcome, reason, counted


class StylizeRecord(_Record):
    job_id: str
    attempts: int = 0
    inputs: list[str]  # store keys
    outputs: list[str] = Field(default_factory=list)
    sizes: list[tuple[int, int]] = Field(default_factory=list)  # (width, height) per input
    # How to stylise (models/stylize_options.py): style (an index) or mix (weights), strength,
    # colors; empty: the network's defaults (and every record made before there were options).
    options: dict = Field(default_factory=dict)
    kind: str = "images"  # or "video": one input video, one output mp4
    progress: dict[str, int] = Field(default_factory=dict)  # a video's frames: done, total (while it runs)
    # A video's: flicker (models/flicker.py; None where no pixel stood still), frames, fps, has_audio.
    video: dict = Field(default_factory=dict)
    source_suffix: str = ""  # a video's file suffix as uploaded (.mp4, .mov...): ffmpeg reads it by its content
    # Set by POST /v1/stylizations/{id}/cancel while it runs: its worker stops it at the next heartbeat.
    cancel_requested_at: datetime | None = None


class ExperimentRecord(BaseModel):
    """Paired jobs that differ only in the decoder, the encoder's downsampling or the loss
    network's pooling (same seed: same shared initial weights and data order; same settings
    otherwise), each variant trained once per seed of `seeds` (service/core/seeds.py)."""

    id: str
    owner: str = ""
    version: int = 0
    created_at: datetime = Field(default_factory=now)
    style_id: str  # the first style
    style_ids: list[str] = Field(default_factory=list)  # every style; empty in older records: [style_id]
    content_set_id: str | None = None
    settings: dict  # the shared settings, without what varies (its seed: the first of seeds)
    # {"decoder", "downsample", "loss_pooling", "label", "job_id", "job_ids"}: job_ids holds one job
    # per seed, in the order of `seeds`, and job_id is its first. Older records: {"decoder", "job_id"},
    # or without job_ids (one seed).
    variants: list[dict]
    seeds: list[int] = Field(default_factory=list)  # empty in records made before several seeds: one

    @staticmethod
    def runs(variant: dict) -> list[str]:
        """A variant's job ids, one per seed (older records: its one job)."""
        return variant.get("job_ids") or [variant["job_id"]]

    @property
    def job_ids(self) -> list[str]:
        """Every job of the experiment: each variant's, seed by seed."""
        return [job_id for v in self.variants for job_id in self.runs(v)]
