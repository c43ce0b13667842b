"""Request and response shapes of the HTTP API (stored shapes live in service/core/records.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from models.config import DEFAULTS, LIMITS, MAX_LR, MAX_STABILITY_WEIGHT, MAX_STYLES
from models.vocabulary import (LOSS_POOLINGS, PRECISIONS, STABILITY_SHIFTS, decoder_label, downsample_label, parse_decoder,
                               parse_downsample)
from service.core.content_sets import SKIPPED_SHOWN, ContentSetRecord, ContentSetState, ContentSource, Progress
from service.core.records import QUALITY_MEASURE, QUALITY_MEASURE_OLD, JobState
from service.core.seeds import MAX_SEEDS

# Lists (GET /v1/jobs, GET /v1/experiments) come a page at a time: `limit` items (this many
# unless asked, at most LIST_LIMIT_MAX), the next page's cursor in X-Next-Cursor and Link.
LIST_LIMIT_DEFAULT = 100
LIST_LIMIT_MAX = 1000

# JSON request bodies are small (an experiment with every option is a few KB), so their size
# and shape are bounded before parsing and validation: parsing cannot grow with an attacker's
# bytes, and validating cannot make an error per key (extra="forbid" makes one for each
# unknown key: a million of them once cost the API 1.36 GB). Routes read JSON under
# MAX_JSON_BYTES (service/api/json_body.py).
MAX_JSON_BYTES = 64 * 1024
MAX_JSON_ITEMS = 1000  # keys and list items, at every depth together
MAX_JSON_DEPTH = 8
MAX_ID_CHARS = 64  # an id in a body: ours are 32 hex digits, 'builtin:<name>' is shorter than this
BodyId = Annotated[str, Field(max_length=MAX_ID_CHARS)]


def check_json_shape(data: Any) -> None:
    """ValueError if a parsed JSON body has more than MAX_JSON_ITEMS keys and items in all or
    nests deeper than MAX_JSON_DEPTH; it stops at the first container past either."""
    items, stack = 0, [(data, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"the body nests deeper than {MAX_JSON_DEPTH} levels; requests here are flat")
        items += len(children)
        if items > MAX_JSON_ITEMS:
            raise ValueError(f"the body holds more than {MAX_JSON_ITEMS} keys and list items; "
                             "requests here need a few dozen")
        stack.extend((child, depth + 1) for child in children)


class JsonBody(BaseModel):
    """A JSON request body: its shape is checked (check_json_shape) before any field is."""

    @model_validator(mode="before")
    @classmethod
    def bounded_shape(cls, data: Any) -> Any:
        check_json_shape(data)
        return data


def check_pooling(v: str) -> str:
    if v not in LOSS_POOLINGS:
        raise ValueError(f"unknown loss pooling {v!r}; valid: {', '.join(LOSS_POOLINGS)}")
    return v


def check_precision(v: str) -> str:
    if v not in PRECISIONS:
        raise ValueError(f"unknown precision {v!r}; valid: {', '.join(PRECISIONS)}")
    return v


class TrainSettings(JsonBody):
    """The settings a job and an experiment share (the decoder aside)."""

    model_config = ConfigDict(extra="forbid")

    style_id: BodyId | None = Field(None, description="One style: an uploaded style's id, or a built-in style as "
                                    "'builtin:<name>' (GET /v1/builtin-styles).")
    style_ids: list[BodyId] | None = Field(None, min_length=1, max_length=MAX_STYLES,
                                           description=f"Several styles (1 to {MAX_STYLES}) trained into one network, "
                                           "each an uploaded style's id or 'builtin:<name>'; instead of style_id.")
    content_set_id: BodyId | None = Field(None, description="An uploaded content set; omit for the built-in "
                                          "photographs.")
    size: int = Field(DEFAULTS.size, ge=LIMITS["size"][0], le=LIMITS["size"][1], description="Crop size in pixels.")
    steps: int = Field(DEFAULTS.steps, ge=LIMITS["steps"][0], le=LIMITS["steps"][1], description="Optimiser steps.")
    batch: int = Field(DEFAULTS.batch, ge=LIMITS["batch"][0], le=LIMITS["batch"][1], description="Crops per step.")
    lr: float = Field(DEFAULTS.lr, gt=0, le=MAX_LR, description="Adam learning rate.")
    content_weight: float = Field(DEFAULTS.content_weight, ge=0)
    style_weight: float = Field(DEFAULTS.style_weight, ge=0)
    tv_weight: float = Field(DEFAULTS.tv_weight, ge=0)
    seed: int = Field(DEFAULTS.seed, ge=LIMITS["seed"][0], le=LIMITS["seed"][1])
    checkpoint_every: int | None = Field(None, ge=LIMITS["checkpoint_every"][0], le=LIMITS["checkpoint_every"][1],
                                         description="Steps between checkpoints [default: the server's].")
    webhook_url: str | None = Field(None, max_length=2000, description="Each state change of the job (of each job "
                                    "of an experiment) is POSTed here, signed; see GET /v1/webhook-secret.")
    devices: int = Field(1, ge=1, description="GPUs (on a CPU worker, processes) to train on with DDP, each on its "
                         "slice of every batch: batch must divide by it [at most the server's max_devices_per_job].")
    downsample: str | list[str] = Field(DEFAULTS.downsample, description="The encoder's downsampling: one name, or "
                                        "one per stage (GET /v1/downsamples lists them).")
    loss_pooling: str = Field(DEFAULTS.loss_pooling, description=f"The loss network's pooling: "
                              f"{' or '.join(LOSS_POOLINGS)}.",
                              json_schema_extra={"enum": list(LOSS_POOLINGS)})
    stability_weight: float = Field(DEFAULTS.stability_weight, ge=0, le=MAX_STABILITY_WEIGHT,
                                    description="Weight of the stability loss (the output should not change when "
                                    "the input shifts by a pixel or is lightly noised); 0: off.")
    stability_shift: str = Field(DEFAULTS.stability_shift, description="The shifts the stability loss asks the "
                                 "network to follow: one (one pixel diagonally) or subgrid (a shift of 0 to 3 "
                                 "pixels on each axis drawn at each step: every shift the network's coarse grid "
                                 "does not follow by construction).", json_schema_extra={"enum": list(STABILITY_SHIFTS)})
    filtered_relu: bool = Field(DEFAULTS.filtered_relu, description="Every ReLU below full resolution evaluated at "
                                "twice the resolution between two low-pass filters (Karras et al. 2021): the network "
                                "follows shifts of the photo its coarse grid does not; false: plain ReLUs, a faster step.")
    precision: str = Field(DEFAULTS.precision, description="The arithmetic a run trains in: auto (bf16 autocast "
                           "where the worker's machine has bf16 matrix units, else fp32), 32 (fp32) or bf16 (bf16 "
                           "autocast; Grams, losses and the optimizer stay fp32). The job reports what auto became "
                           "as trained_precision.", json_schema_extra={"enum": list(PRECISIONS)})

    @field_validator("downsample")
    @classmethod
    def known_downsample(cls, v: str | list[str]) -> str:
        return downsample_label(parse_downsample(v))

    @field_validator("loss_pooling")
    @classmethod
    def known_pooling(cls, v: str) -> str:
        return check_pooling(v)

    @field_validator("precision")
    @classmethod
    def known_precision(cls, v: str) -> str:
        return check_precision(v)

    @field_validator("stability_shift")
    @classmethod
    def known_shift(cls, v: str) -> str:
        if v not in STABILITY_SHIFTS:
            raise ValueError(f"unknown stability shift {v!r}; valid: {', '.join(STABILITY_SHIFTS)}")
        return v

    @model_validator(mode="after")
    def one_way_to_name_styles(self) -> TrainSettings:
        if (self.style_id is None) == (self.style_ids is None):
            raise ValueError("name the style with style_id, or several with style_ids (not both)")
        styles = self.styles
        dupes = sorted({s for s in styles if styles.count(s) > 1})
        if dupes:
            raise ValueError(f"style {dupes[0]!r} appears more than once in style_ids; each style must differ")
        return self

    @property
    def styles(self) -> list[str]:
        return [self.style_id] if self.style_id is not None else list(self.style_ids or [])

    def train_settings(self, default_checkpoint_every: int | None) -> dict:
        """The TrainConfig fields of this request (the decoder and variants aside), and devices."""
        settings = self.model_dump(exclude={"style_id", "style_ids", "content_set_id", "variants", "decoder",
                                            "webhook_url", "seeds"}, exclude_none=True)
        if "checkpoint_every" not in settings and default_checkpoint_every is not None:
            settings["checkpoint_every"] = default_checkpoint_every
        return settings


class JobCreate(TrainSettings):
    """A training job: a style, content (an uploaded set or the built-in photos) and settings."""

    decoder: str | list[str] = Field(DEFAULTS.decoder, description="One decoder name, or one per upsampling stage.")

    @field_validator("decoder")
    @classmethod
    def known_decoder(cls, v: str | list[str]) -> str:
        return decoder_label(parse_decoder(v))


class VariantSpec(BaseModel):
    """One variant of an experiment: the decoder, and optionally the encoder's downsampling and
    the loss network's pooling (missing: the request's own settings)."""

    model_config = ConfigDict(extra="forbid")

    decoder: str | list[str]
    downsample: str | list[str] | None = None
    loss_pooling: str | None = None


def variant_label(decoder: str, downsample: str, loss_pooling: str) -> str:
    """A variant's canonical name: its decoder, then what differs from the defaults."""
    parts = [decoder]
    if downsample != DEFAULTS.downsample:
        parts.append(f"{downsample} down")
    if loss_pooling != DEFAULTS.loss_pooling:
        parts.append(f"{loss_pooling}-pool loss")
    return " / ".join(parts)


class ExperimentCreate(TrainSettings):
    """Two or more variants trained alike: one job each per seed, the same seeds and settings, differing
    only in the decoder, the encoder's downsampling or the loss network's pooling."""

    variants: list[str | list[str] | VariantSpec] = Field(
        ..., description="Each a decoder name or per-stage mix, or an object {decoder, downsample, loss_pooling} "
        "(missing keys: this request's settings); at least two, all different.")
    seeds: int = Field(1, ge=1, le=MAX_SEEDS, description=f"How many times each variant trains (1 to {MAX_SEEDS}): "
                       "with seed, seed + 1, ... (everything else equal), one job per variant and seed, each "
                       "counted in the quotas. With two or more, each measure is reported per variant as a mean "
                       "and 95% interval over the seeds.")

    @model_validator(mode="after")
    def distinct_known_variants(self) -> ExperimentCreate:
        if len(self.variants) < 2:
            raise ValueError("an experiment needs at least two variants to compare")
        if self.seed + self.seeds - 1 > LIMITS["seed"][1]:
            raise ValueError(f"seeds: seed + seeds - 1 must be at most {LIMITS['seed'][1]} (the seeds are "
                             f"{self.seed} to {self.seed + self.seeds - 1})")
        labels = [v["label"] for v in self.variant_settings()]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(f"variant {dupes[0]!r} appears more than once; each variant must differ")
        return self

    def variant_settings(self) -> list[dict]:
        """Each variant as {decoder, downsample, loss_pooling, label}, canonical; ValueError for a bad name."""
        out = []
        for v in self.variants:
            spec = v if isinstance(v, VariantSpec) else VariantSpec(decoder=v)
            decoder = decoder_label(parse_decoder(spec.decoder))
            downsample = self.downsample if spec.downsample is None else downsample_label(parse_downsample(spec.downsample))
            pooling = self.loss_pooling if spec.loss_pooling is None else check_pooling(spec.loss_pooling)
            out.append({"decoder": decoder, "downsample": downsample, "loss_pooling": pooling,
                        "label": variant_label(decoder, downsample, pooling)})
        return out


class AttemptPublic(BaseModel):
    number: int
    worker: str
    started_at: datetime
    ended_at: datetime | None
    start_step: int
    end_step: int | None
    outcome: str | None
    reason: str | None
    counted: bool  # against the attempt limit (not when the worker was merely asked to stop)


class JobPublic(BaseModel):
    id: str
    state: JobState
    cancel_requested: bool
    step: int
    steps: int
    decoder: str
    config: dict
    style_id: str = Field(description="The first style (the only one of a one-style job).")
    styles: list[dict] = Field(description="Every style the network learned, in its order (the index stylising "
                               "takes): id (an uploaded style's, or builtin:<name>) and name.")
    content_set_id: str | None
    losses: dict[str, float]
    artifacts: dict[str, float] = Field(description="The probe's latest artifact measures (dB): checkerboard scores "
                                        "artifact_p2, artifact_p4, artifact_p8 (higher: more artifact) and shift "
                                        "equivariance eq_t1..eq_t4 (PSNR of f(shift(x)) against shift(f(x)) at shifts "
                                        "of 1 to 4 pixels; higher: more equivariant). Jobs trained before a measure "
                                        "existed lack it.")
    quality: dict[str, float | str] = Field(description="Latest style_distance and content_distance on the probed "
                                            "panel (lower is better for both), and quality_measure: what measured "
                                            f"them, '{QUALITY_MEASURE}' (one fixed VGG19 with max pooling, the same "
                                            f"for every run) or '{QUALITY_MEASURE_OLD}' (jobs measured before it, by "
                                            "their own loss network: not comparable across loss networks); empty "
                                            "before the first probe and for jobs trained before they were measured.")
    quality_measure: str | None = Field(None, description="What measured the distances in quality and in "
                                        f"artifact_curve's latest rows: '{QUALITY_MEASURE}' or "
                                        f"'{QUALITY_MEASURE_OLD}'; None before any were measured.")
    trained_precision: str | None = Field(None, description="What the run computed in, as its worker reported it "
                                          "(32-true or bf16-mixed: config.precision resolved on that machine); "
                                          "None until reported.")
    seconds_per_step: float | None
    devices: int
    attempts: int
    history: list[AttemptPublic]
    resumed_from_step: int | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    links: dict[str, str]
    loss_curve: list[dict[str, float]]
    artifact_curve: list[dict[str, float]] = Field(description="The probe's rows over training: step, artifact_p2, "
                                                   "artifact_p4, artifact_p8, eq_t1..eq_t4, style_distance, "
                                                   "content_distance (measured by quality_measure); rows of older "
                                                   "jobs lack the measures added since.")
    panel: list[dict]
    style_panels: list[dict] = Field(default_factory=list, description="A several-style network: every style's "
                                     "outputs on the same panel photos, [{style, panel}] (style 0's is `panel`); "
                                     "empty for one style.")


class StylePublic(BaseModel):
    id: str
    width: int | None  # None: stored before styles had descriptions
    height: int | None
    name: str | None = None
    created_at: datetime | None = None


class ContentSetPublic(BaseModel):
    """A content set as its record says (service/core/content_sets.py): jobs may train on it once
    `state` is ready; while validating, `progress` counts what its worker has read."""

    id: str
    name: str | None = None
    source: ContentSource
    bucket: str | None = None
    prefix: str | None = None
    state: ContentSetState
    error: str | None = None
    progress: Progress
    count: int
    skipped: list[dict[str, str]] = Field(description=f"The first {SKIPPED_SHOWN} images left out (name, reason).")
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def of(cls, record: ContentSetRecord) -> ContentSetPublic:
        return cls.model_validate({**record.model_dump(), "skipped": record.skipped[:SKIPPED_SHOWN]})


class RegisterPrefix(JsonBody):
    """An S3 prefix an operator already holds images under, read in place (nothing is copied)."""

    model_config = ConfigDict(extra="forbid")

    prefix: str = Field(min_length=1, max_length=1024, description="Key prefix, e.g. 'datasets/coco/train2017/'.")
    bucket: str | None = Field(None, min_length=3, max_length=63, description="Default: the service's bucket.")
    name: str | None = Field(None, max_length=200)


class StylizationPublic(BaseModel):
    id: str
    job_id: str
    state: JobState
    error: str | None
    outputs: list[dict] = Field(description="index, width, height, url; a video's one output also has frames, fps, "
                                "has_audio and flicker.")
    kind: str = Field("images", description="images, or video")
    options: dict = Field(default_factory=dict, description="style, mix, strength, colors as asked (empty: the "
                          "defaults)")
    progress: dict[str, int] | None = Field(None, description="A video's frames: done, total (while it runs, and at "
                                            "the end).")
    flicker: dict[str, float | None] | None = Field(None, description="A video's flicker (models/flicker.py): input "
                                                     "and output, in 8-bit levels; None where no pixel stood still.")
    cancel_requested: bool = Field(False, description="Cancel was asked while it runs: its worker stops it at the "
                                   "next heartbeat, and it ends cancelled.")


# Experiments are answered as plain dicts (service/api/routes/experiments.py builds them from
# their jobs); these models describe them in the OpenAPI schema (`responses=`), so clients can
# read their shape. tests/client checks real answers against them, key for key.
class ExperimentRun(BaseModel):
    """One seed's job of a variant, in brief."""

    job_id: str
    seed: int | None
    state: JobState
    step: int
    steps: int
    error: str | None
    final: dict[str, float] | None = Field(description="Its final measures (the probe's last row and the last "
                                           "step's loss) once it has succeeded; None before.")


class ExperimentVariant(JobPublic):
    """A variant: its first seed's job as GET /v1/jobs/{id} shows it, and what the experiment adds."""

    label: str = Field(description="The variant's canonical name: its decoder, then what differs from the defaults.")
    scores: dict[str, dict[str, float] | None] = Field(description="init and final: the probe's first and last rows.")
    runs: list[ExperimentRun] = Field(description="Every seed's job, in the order of the experiment's seeds.")
    summary: dict[str, dict[str, float | int | None]] = Field(
        description="Per measure of the finished runs: mean, and low and high of its 95% interval over the seeds "
        "(None with one), and n, the seeds it holds.")
    spectrum_profile: dict[str, Any] | None = Field(description="The 1-D spectrum of its first panel photo "
                                                    "(photo, freqs, power); None before it has one.")


class ExperimentPublic(BaseModel):
    id: str
    created_at: datetime
    state: str = Field(description="running while any job is queued or running; then succeeded, failed or "
                       "cancelled.")
    style_id: str
    styles: list[dict]
    content_set_id: str | None
    settings: dict
    seeds: list[int | None]
    variants: list[ExperimentVariant]
    panel: list[str] = Field(description="The panel photos every variant has an output on.")
    differences: list[dict] = Field(description="For each pair of variants and measure: a, b, measure, differ.")
    spectra: dict[str, list[str]]
    comparisons: list[dict]


class ExperimentBrief(BaseModel):
    """An experiment as GET /v1/experiments lists it."""

    id: str
    created_at: datetime
    state: str
    variants: list[str] = Field(description="The variants' labels.")
    settings: dict
    seeds: int = Field(description="How many seeds each variant trains with.")
