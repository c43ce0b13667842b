"""Request and response shapes of the HTTP API (stored shapes live in service/jobs.py)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from models.config import DEFAULT_WEIGHTS, MAX_BATCH, MAX_SIZE, MAX_STEPS
from models.vocabulary import decoder_label, parse_decoder
from service.jobs import JobState


class TrainSettings(BaseModel):
    """The settings a job and an experiment share (the decoder aside)."""

    model_config = ConfigDict(extra="forbid")

    style_id: str
    content_set_id: str | None = Field(None, description="An uploaded content set; omit for the built-in photographs.")
    size: int = Field(128, ge=16, le=MAX_SIZE)
    steps: int = Field(200, ge=1, le=MAX_STEPS)
    batch: int = Field(4, ge=1, le=MAX_BATCH)
    lr: float = Field(1e-3, gt=0, le=1)
    content_weight: float = Field(DEFAULT_WEIGHTS["content"], ge=0)
    style_weight: float = Field(DEFAULT_WEIGHTS["style"], ge=0)
    tv_weight: float = Field(DEFAULT_WEIGHTS["tv"], ge=0)
    seed: int = Field(0, ge=0, le=2**32 - 1)
    checkpoint_every: int | None = Field(None, ge=1, le=MAX_STEPS, description="Steps between checkpoints.")


class JobCreate(TrainSettings):
    """A training job: a style, content (an uploaded set or the built-in photos) and settings."""

    decoder: str | list[str] = Field("resize-nearest", description="One decoder name, or one per upsampling stage.")

    @field_validator("decoder")
    @classmethod
    def known_decoder(cls, v: str | list[str]) -> str:
        return decoder_label(parse_decoder(v))


class ExperimentCreate(TrainSettings):
    """Two or more decoder variants trained alike: one job each, differing only in the decoder."""

    variants: list[str | list[str]] = Field(..., description="Decoder names or per-stage mixes; at least two, all different.")

    @field_validator("variants")
    @classmethod
    def distinct_known_variants(cls, v: list) -> list[str]:
        labels = [decoder_label(parse_decoder(x)) for x in v]
        if len(labels) < 2:
            raise ValueError("an experiment needs at least two decoder variants to compare")
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(f"variant {dupes[0]!r} appears more than once; each variant must differ")
        return labels

    def job(self, decoder: str) -> JobCreate:
        return JobCreate(decoder=decoder, **self.model_dump(exclude={"variants"}))


class JobPublic(BaseModel):
    id: str
    state: JobState
    cancel_requested: bool
    step: int
    steps: int
    decoder: str
    config: dict
    style_id: str
    content_set_id: str | None
    losses: dict[str, float]
    artifacts: dict[str, float]
    seconds_per_step: float | None
    attempts: int
    resumed_from_step: int | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    links: dict[str, str]
    loss_curve: list[dict[str, float]]
    artifact_curve: list[dict[str, float]]
    panel: list[dict]


class StylePublic(BaseModel):
    id: str
    width: int
    height: int


class ContentSetPublic(BaseModel):
    id: str
    count: int
    skipped: list[dict[str, str]]


class StylizationPublic(BaseModel):
    id: str
    job_id: str
    state: JobState
    error: str | None
    outputs: list[dict]  # index, width, height, url
