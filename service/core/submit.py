"""Creating work: a training job, an experiment (one job per variant and seed, all or
nothing) and a stylisation. Each record is written before its message is sent; if sending
fails, what was written is taken back, so no job is left that nothing will ever run."""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Iterable
from pathlib import Path

from models.config import DEFAULTS, MAX_STYLES, TrainConfig, per_device_batch
from models.stylize_options import StylizeOptions
from models.video_input import SNIFF_BYTES, sniff
from service.core import builtin_styles, usage, webhooks
from service.core.auth import ApiKey as Owner
from service.core.content_sets import ContentSetRecord, ContentSetState, ContentSource
from service.core.errors import BadRequest, Conflict, Forbidden, NotFound, QuotaExceeded, Unavailable
from service.core.stores import Stores
from service.core.keys import Keys, new_id
from service.core.queue import STYLIZE_TASK, TRAIN_TASK, VALIDATE_TASK, JobQueue
from service.core.records import ExperimentRecord, JobRecord, JobState, StylizeRecord
from service.core.seeds import seeds_for
from service.core.settings import Settings
from service.core.storage import AccessDenied, BucketNotFound, S3Store

log = logging.getLogger(__name__)


def resolve_styles(stores: Stores, owner: Owner, style_ids: list[str]) -> list[dict]:
    """Each style a job names, as {"id", "name"}: a built-in by its name, an uploaded style by the
    file name it was uploaded with; NotFound for one that does not exist (or is another owner's)."""
    if not 1 <= len(style_ids) <= MAX_STYLES:
        raise ValueError(f"a job takes 1 to {MAX_STYLES} styles, got {len(style_ids)}")
    styles = []
    for style_id in style_ids:
        if builtin_styles.is_builtin(style_id):
            styles.append({"id": style_id, "name": builtin_styles.builtin_name(style_id)})
            continue
        try:
            meta = stores.styles.meta(style_id, owner.scope)
        except NotFound:
            raise NotFound(f"no style {style_id!r}; upload one with POST /v1/styles, or name a built-in one as "
                           f"'builtin:<name>' ({', '.join(builtin_styles.BUILTIN_STYLES)})") from None
        styles.append({"id": style_id, "name": meta.get("name")})
    return styles


def _job_record(stores: Stores, owner: Owner, *, styles: list[dict], content_set_id: str | None, settings: dict,
                max_devices: int, experiment_id: str | None = None, webhook_url: str | None = None) -> JobRecord:
    if content_set_id is not None:
        stores.content_sets.ready(content_set_id, owner.scope)  # 409 while validating, or if it failed
    settings = dict(settings)
    devices = settings.pop("devices", 1)  # how the job runs, beside what it computes (its config)
    config = TrainConfig.from_dict(settings)  # the same validation as the CLI
    if not 1 <= devices <= max_devices:
        raise ValueError(f"devices must be between 1 and {max_devices} (this server's max_devices_per_job), got {devices}")
    per_device_batch(config.batch, devices)
    return JobRecord(id=new_id(), owner=owner.owner, config=config.to_dict(), style_id=styles[0]["id"],
                     styles=styles, content_set_id=content_set_id, steps=config.steps, experiment_id=experiment_id,
                     webhook_url=webhook_url, devices=devices)


def check_storage(stores: Stores, owner: Owner, limits: Settings) -> None:
    """QuotaExceeded once the owner's stored bytes reach the limit (the request that crosses it
    is let through: sizes are known only once stored). One record read (service/core/usage.py)."""
    if owner.admin:
        return
    used = usage.stored(stores, owner.owner)
    if used >= limits.quota_storage_bytes:
        raise QuotaExceeded(f"quota: storage is limited to {limits.quota_storage_bytes} bytes and you use {used}; "
                            "delete jobs, styles or content sets you no longer need", retry_after_s=3600)


def check_quota(stores: Stores, owner: Owner, limits: Settings, new: list[JobRecord]) -> None:
    """Count these jobs against the owner's quotas (service/core/usage.py), or raise
    QuotaExceeded (a 429 with Retry-After) and count nothing."""
    if owner.admin:
        return
    check_storage(stores, owner, limits)

    def still_active(job_id: str) -> bool | None:
        try:
            return not stores.jobs.get(job_id).final
        except NotFound:
            return None

    usage.reserve(stores, owner.owner, new, limits, still_active)


def submit_job(stores: Stores, queue: JobQueue, owner: Owner, *, style_ids: list[str], content_set_id: str | None,
               settings: dict, limits: Settings, webhook_url: str | None = None) -> JobRecord:
    """A training job, queued. `settings` are TrainConfig fields, and devices."""
    if webhook_url:
        webhooks.check_url(webhook_url, allow_private=limits.webhook_allow_private)
    record = _job_record(stores, owner, styles=resolve_styles(stores, owner, style_ids), content_set_id=content_set_id,
                         settings=settings, max_devices=limits.max_devices_per_job, webhook_url=webhook_url)
    check_quota(stores, owner, limits, [record])
    record = stores.jobs.create(record)
    try:
        queue.send(TRAIN_TASK, record.id)
    except Unavailable:
        stores.jobs.fail_unqueued(record.id, "could not be queued: the job queue was unreachable")
        raise
    return record


def create_experiment(stores: Stores, queue: JobQueue, owner: Owner, *, style_ids: list[str],
                      content_set_id: str | None, shared: dict, variants: list[dict], limits: Settings,
                      webhook_url: str | None = None, seeds: int = 1) -> ExperimentRecord:
    """One job per variant and seed with the same settings otherwise, or nothing at all. Each
    variant is {"decoder", "downsample", "loss_pooling", "label"}: what it changes of the shared
    settings; the seeds are shared["seed"] and the next ones (service/core/seeds.py)."""
    experiment_id = new_id()
    if webhook_url:
        webhooks.check_url(webhook_url, allow_private=limits.webhook_allow_private)
    styles = resolve_styles(stores, owner, style_ids)
    varied = ("decoder", "downsample", "loss_pooling")
    seed_list = seeds_for(shared.get("seed", DEFAULTS.seed), seeds)
    # runs[v][s]: variant v at seed s; every config validated before anything is written.
    runs = [[_job_record(stores, owner, styles=styles, content_set_id=content_set_id,
                         settings={**shared, **{k: v[k] for k in varied}, "seed": seed},
                         max_devices=limits.max_devices_per_job, experiment_id=experiment_id, webhook_url=webhook_url)
             for seed in seed_list] for v in variants]
    records = [r for per_seed in runs for r in per_seed]
    check_quota(stores, owner, limits, records)  # every job counts
    created: list[str] = []
    try:
        for record in records:
            stores.jobs.create(record)
            created.append(record.id)
        for s in range(len(seed_list)):  # seed by seed: with few workers, every variant's first run ends first
            for per_seed in runs:
                queue.send(TRAIN_TASK, per_seed[s].id)
        return stores.experiments.create(ExperimentRecord(
            id=experiment_id, owner=owner.owner, style_id=style_ids[0], style_ids=style_ids,
            content_set_id=content_set_id, settings={k: v for k, v in shared.items() if k not in varied},
            seeds=seed_list,
            variants=[{**{k: per_seed[0].config[k] for k in varied}, "label": v["label"], "job_id": per_seed[0].id,
                       "job_ids": [r.id for r in per_seed]}
                      for v, per_seed in zip(variants, runs)]))
    except BaseException:
        for job_id in created:  # a worker that already received one finds it gone
            _take_back(stores, job_id)
        raise


def _take_back(stores: Stores, job_id: str) -> None:
    try:
        if stores.jobs.get(job_id).state == JobState.queued:
            stores.jobs.request_cancel(job_id)
        stores.jobs.delete(job_id)
    except Exception:  # noqa: BLE001 - the rollback does what it can; the caller's error is what matters
        log.exception("could not take back job %s of a failed experiment", job_id)


def check_options_for(record: JobRecord, options: StylizeOptions) -> None:
    """The options against the job's network: a style index it has, a mix of as many weights as
    it has styles (ValueError, a 422, otherwise)."""
    n = len(record.style_list)
    if options.style is not None and options.style >= n:
        raise ValueError(f"style {options.style}: job {record.id} has {n} style(s), indexed 0 to {n - 1}")
    if options.mix is not None and len(options.mix) != n:
        raise ValueError(f"mix has {len(options.mix)} weight(s); job {record.id} has {n} style(s): give one weight each")


def _stylizable(stores: Stores, owner: Owner, job_id: str, options: StylizeOptions, limits: Settings) -> JobRecord:
    record = stores.jobs.get(job_id, owner.scope)
    check_storage(stores, owner, limits)
    if record.state != JobState.succeeded:
        raise Conflict(f"job {job_id} is {record.state.value}; only a succeeded job can stylise")
    check_options_for(record, options)
    return record


def _queue_stylize(stores: Stores, queue: JobQueue, request: StylizeRecord) -> StylizeRecord:
    request = stores.stylizations.create(request)
    usage.count_prefix(stores.store, request.owner, Keys.stylize_prefix(request.id))
    try:
        queue.send(STYLIZE_TASK, request.id)
    except Unavailable:
        stores.stylizations.update(request.id, lambda r: r.move(JobState.failed, error="could not be queued"))
        raise
    return request


def request_stylize(stores: Stores, queue: JobQueue, owner: Owner, job_id: str, pngs: list[bytes],
                    limits: Settings, options: StylizeOptions | None = None) -> StylizeRecord:
    """Stylise images (already checked and re-encoded as PNG) with a finished job's network."""
    options = options or StylizeOptions()
    _stylizable(stores, owner, job_id, options, limits)
    request_id = new_id()
    inputs = []
    for i, png in enumerate(pngs):
        stores.store.put_bytes(Keys.stylize_input(request_id, i), png, content_type="image/png")
        inputs.append(Keys.stylize_input(request_id, i))
    return _queue_stylize(stores, queue, StylizeRecord(id=request_id, owner=owner.owner, job_id=job_id, inputs=inputs,
                                                       options=options.to_dict()))


VIDEO_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,5}")  # kept from the uploaded name, else none


def request_stylize_video(stores: Stores, queue: JobQueue, owner: Owner, job_id: str, chunks: Iterable[bytes],
                          filename: str, limits: Settings, options: StylizeOptions | None = None) -> StylizeRecord:
    """Stylise a video with a finished job's network: stored as uploaded, then read by the stylise
    worker (a file ffmpeg cannot read fails the request there, with ffmpeg's reason). Its first
    bytes are sniffed first (models/video_input.py, the worker's own check): a playlist, a
    manifest or anything else not a single-file video container is a ValueError (422) at once,
    and nothing is stored."""
    options = options or StylizeOptions()
    _stylizable(stores, owner, job_id, options, limits)
    rest = iter(chunks)
    head = b""
    for chunk in rest:
        head += chunk
        if len(head) >= SNIFF_BYTES:
            break
    sniff(head[:SNIFF_BYTES], filename or "the video")  # VideoError, a ValueError: empty, or not a container we read
    request_id = new_id()
    key = Keys.stylize_video_input(request_id)
    stores.store.put_stream(key, itertools.chain([head], rest), content_type="application/octet-stream")
    suffix = Path(filename or "").suffix
    return _queue_stylize(stores, queue, StylizeRecord(
        id=request_id, owner=owner.owner, job_id=job_id, inputs=[key], options=options.to_dict(), kind="video",
        source_suffix=suffix if VIDEO_SUFFIX.fullmatch(suffix) else ""))


def validate_content_set(stores: Stores, queue: JobQueue, record: ContentSetRecord) -> ContentSetRecord:
    """A content set to validate (an archive stored, or a prefix registered): its record is
    written, then its id sent to the data queue; if sending fails the set is failed with the
    reason and its archive taken back (a failed set keeps nothing but its record)."""
    stores.content_sets.create(record)
    try:
        queue.send(VALIDATE_TASK, record.id)
    except Unavailable as e:
        stores.store.delete(Keys.content_archive(record.id))
        reason = f"could not be queued for validation: {e}"

        def fail(r: ContentSetRecord) -> None:
            r.state, r.error = ContentSetState.failed, reason

        stores.content_sets.update(record.id, fail)
        raise
    return record


def register_prefix(stores: Stores, queue: JobQueue, owner: Owner, *, prefix: str, bucket: str | None,
                    name: str | None) -> ContentSetRecord:
    """An operator's S3 prefix as a content set, read in place by the validating worker (nothing
    is copied). Checked at once: an S3 store, an admin key, a bucket that exists and a prefix
    with at least one object the service's credentials may list."""
    if not owner.admin:
        raise Forbidden("registering an S3 prefix needs an admin key (`checkerless keys create --name NAME --admin`)")
    store = stores.store
    if not isinstance(store, S3Store):
        raise BadRequest(f"registering a prefix needs an S3 store; this service stores in a {store.describe()} "
                         "(set CHECKERLESS_STORE=s3), or upload an archive instead")
    prefix = prefix.lstrip("/")
    prefix = prefix if prefix.endswith("/") else prefix + "/"  # a folder: 'a/b' must not take 'a/bc/...'
    try:
        first = store.first_key(prefix, bucket=bucket)
    except BucketNotFound as e:
        raise BadRequest(str(e)) from None
    except AccessDenied as e:
        raise Forbidden(str(e)) from None
    where = f"s3://{bucket or store.bucket}/{prefix}"
    if first is None:
        raise BadRequest(f"no object under {where}: check the bucket and the prefix")
    return validate_content_set(stores, queue, ContentSetRecord(
        id=new_id(), owner=owner.owner, name=name or where, source=ContentSource.prefix, bucket=bucket,
        prefix=prefix, state=ContentSetState.validating))
