"""Typed results: what the API answers, as dataclasses.

Each class mirrors one model of the service's OpenAPI schema (named in `SCHEMA`): its fields
are the model's properties, a field the schema lets be null is Optional here, and a test
(tests/client/test_results_schema.py) holds the two together. Fields the server adds later
are ignored by from_json (an older client keeps working); `to_json()` gives the answer whole,
as it came."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, TypeVar, Union

from checkerless_client.errors import CheckerlessError

T = TypeVar("T", bound="Result")
FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})  # a job's or a stylisation's end


@dataclass(frozen=True, kw_only=True)
class Result:
    """Base of every typed result."""

    SCHEMA: ClassVar[str] = ""  # the OpenAPI schema's model this mirrors

    @classmethod
    def from_json(cls: type[T], data: dict[str, Any]) -> T:
        """A result from the API's JSON (nested results and times converted)."""
        if not isinstance(data, dict):
            raise CheckerlessError(f"expected a JSON object for {cls.__name__}, got {type(data).__name__}")
        hints = _hints(cls)
        values, missing = {}, []
        for f in dataclasses.fields(cls):
            if f.name in data:
                values[f.name] = _convert(hints[f.name], data[f.name])
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                missing.append(f.name)
        if missing:
            raise CheckerlessError(f"the API's {cls.__name__} lacks {', '.join(missing)}: is the server older "
                                   "than this client?")
        result = cls(**values)
        object.__setattr__(result, "_json", data)  # frozen: set once, here
        return result

    def to_json(self) -> dict[str, Any]:
        """The API's JSON this was read from, whole (fields this client does not know included)."""
        return getattr(self, "_json", None) or dataclasses.asdict(self)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(options[0], value) if len(options) == 1 else value
    if origin is list:
        (item,) = typing.get_args(tp)
        return [_convert(item, v) for v in value]
    if isinstance(tp, type) and issubclass(tp, Result):
        return tp.from_json(value)
    if tp is datetime:
        return datetime.fromisoformat(value)
    return value


# --- jobs -------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Attempt(Result):
    """One attempt at a job: its worker, the steps it ran, how it ended and why."""

    SCHEMA: ClassVar[str] = "AttemptPublic"
    number: int
    worker: str
    started_at: datetime
    ended_at: datetime | None
    start_step: int
    end_step: int | None
    outcome: str | None
    reason: str | None
    counted: bool  # against the attempt limit (not when the worker was merely asked to stop)


@dataclass(frozen=True, kw_only=True)
class Job(Result):
    """A training job (GET /v1/jobs/{id}). `state`: queued, running, succeeded, failed or cancelled."""

    SCHEMA: ClassVar[str] = "JobPublic"
    id: str
    state: str
    cancel_requested: bool
    step: int
    steps: int
    decoder: str
    config: dict[str, Any]
    style_id: str
    styles: list[dict[str, Any]]
    content_set_id: str | None
    losses: dict[str, float]
    artifacts: dict[str, float]
    quality: dict[str, float | str]
    quality_measure: str | None = None
    trained_precision: str | None = None
    seconds_per_step: float | None
    devices: int
    attempts: int
    history: list[Attempt]
    resumed_from_step: int | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    links: dict[str, str]
    loss_curve: list[dict[str, float]]
    artifact_curve: list[dict[str, float]]
    panel: list[dict[str, Any]]
    style_panels: list[dict[str, Any]] = field(default_factory=list)

    @property
    def final(self) -> bool:
        """It has ended: succeeded, failed or cancelled."""
        return self.state in FINAL_STATES

    @property
    def succeeded(self) -> bool:
        return self.state == "succeeded"


# --- experiments ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ExperimentRun(Result):
    """One seed's job of an experiment's variant, in brief."""

    SCHEMA: ClassVar[str] = "ExperimentRun"
    job_id: str
    seed: int | None
    state: str
    step: int
    steps: int
    error: str | None
    final: dict[str, float] | None  # its final measures once it has succeeded


@dataclass(frozen=True, kw_only=True)
class Variant(Job):
    """An experiment's variant: its first seed's job, and what the experiment adds."""

    SCHEMA: ClassVar[str] = "ExperimentVariant"
    label: str
    scores: dict[str, dict[str, float] | None]
    runs: list[ExperimentRun]
    summary: dict[str, dict[str, float | int | None]]
    spectrum_profile: dict[str, Any] | None


@dataclass(frozen=True, kw_only=True)
class Experiment(Result):
    """An A/B experiment (GET /v1/experiments/{id}). `state`: running, succeeded, failed or cancelled."""

    SCHEMA: ClassVar[str] = "ExperimentPublic"
    id: str
    created_at: datetime
    state: str
    style_id: str
    styles: list[dict[str, Any]]
    content_set_id: str | None
    settings: dict[str, Any]
    seeds: list[int | None]
    variants: list[Variant]
    panel: list[str]
    differences: list[dict[str, Any]]
    spectra: dict[str, list[str]]
    comparisons: list[dict[str, Any]]

    @property
    def final(self) -> bool:
        return self.state != "running"


@dataclass(frozen=True, kw_only=True)
class ExperimentBrief(Result):
    """An experiment as the list shows it (GET /v1/experiments)."""

    SCHEMA: ClassVar[str] = "ExperimentBrief"
    id: str
    created_at: datetime
    state: str
    variants: list[str]
    settings: dict[str, Any]
    seeds: int


# --- stylisations, styles, content sets -------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Stylization(Result):
    """A stylisation request. `outputs` (once succeeded): index, width, height, url; a video's
    one output also has frames, fps, has_audio and flicker."""

    SCHEMA: ClassVar[str] = "StylizationPublic"
    id: str
    job_id: str
    state: str
    error: str | None
    outputs: list[dict[str, Any]]
    kind: str = "images"
    options: dict[str, Any] = field(default_factory=dict)
    progress: dict[str, int] | None = None
    flicker: dict[str, float | None] | None = None
    cancel_requested: bool = False

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


@dataclass(frozen=True, kw_only=True)
class Style(Result):
    """An uploaded style image."""

    SCHEMA: ClassVar[str] = "StylePublic"
    id: str
    width: int | None
    height: int | None
    name: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class ContentSetProgress(Result):
    """What a content set's validation has read so far."""

    SCHEMA: ClassVar[str] = "Progress"
    members: int = 0
    bytes_read: int = 0
    total_bytes: int | None = None


@dataclass(frozen=True, kw_only=True)
class ContentSet(Result):
    """A content set. `state`: validating, ready or failed; jobs train on it once ready."""

    SCHEMA: ClassVar[str] = "ContentSetPublic"
    id: str
    name: str | None = None
    source: str
    bucket: str | None = None
    prefix: str | None = None
    state: str
    error: str | None = None
    progress: ContentSetProgress
    count: int
    skipped: list[dict[str, str]]
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def final(self) -> bool:
        return self.state != "validating"


# --- pages ------------------------------------------------------------------------------------

R = TypeVar("R")


@dataclass(frozen=True)
class Page(typing.Generic[R]):
    """One page of a list: its items, and where the next page is (None on the last page)."""

    items: list[R]
    next_cursor: str | None
    next_url: str | None  # the Link header's rel="next", a path on the API


SCHEMA_RESULTS: tuple[type[Result], ...] = (Attempt, Job, ExperimentRun, Variant, Experiment, ExperimentBrief,
                                             Stylization, Style, ContentSetProgress, ContentSet)
