"""Ids and every storage key, in one place. Keys are built from ids we made (uuid4 hex),
never from user text."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone

from models.vocabulary import EXPORT_SUFFIXES
from service.core.errors import BadRequest, NotFound, shown_id


def new_id() -> str:
    return uuid.uuid4().hex


def check_id(value: str, what: str) -> str:
    """An id we could have made, else NotFound (so a path like '../x' is simply unknown), which
    quotes the value cut short."""
    if not (len(value) == 32 and all(c in "0123456789abcdef" for c in value)):
        raise NotFound(f"no {what} {shown_id(value)}")
    return value


class Keys:
    @staticmethod
    def style(style_id: str) -> str:
        return f"styles/{style_id}/style.png"

    @staticmethod
    def style_meta(style_id: str) -> str:
        return f"styles/{style_id}/meta.json"

    @staticmethod
    def style_prefix(style_id: str) -> str:
        return f"styles/{style_id}"

    @staticmethod
    def content_set_prefix(set_id: str) -> str:
        return f"contents/{set_id}"

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
    def content_manifest(set_id: str) -> str:
        """The validated, ordered image list (service/core/content_sets.py)."""
        return f"contents/{set_id}/manifest.json"

    @staticmethod
    def content_archive(set_id: str) -> str:
        """An uploaded archive as it arrived, until a worker has validated and unpacked it."""
        return f"contents/{set_id}/upload/archive"

    @staticmethod
    def content_member(set_id: str, index: int, suffix: str) -> str:
        """An archive member unpacked by the validating worker, its bytes unchanged."""
        return f"contents/{set_id}/images/{index:07d}{suffix}"

    @staticmethod
    def job_prefix(job_id: str) -> str:
        return f"jobs/{job_id}"

    @staticmethod
    def job(job_id: str) -> str:
        return f"jobs/{job_id}/job.json"

    @staticmethod
    def checkpoint(job_id: str) -> str:
        """Where records from before checkpoints per attempt have theirs (JobRecord.checkpoint)."""
        return f"jobs/{job_id}/checkpoint/last.ckpt"

    @staticmethod
    def attempt_checkpoint(job_id: str, attempt: int) -> str:
        """An attempt's latest checkpoint: each attempt writes its own, and the record names the
        one the job resumes from, so a late upload of an attempt that lost the job changes nothing."""
        return f"jobs/{job_id}/checkpoint/attempt-{attempt}.ckpt"

    @staticmethod
    def export(job_id: str, fmt: str) -> str:
        return f"jobs/{job_id}/export/net{EXPORT_SUFFIXES[fmt]}"

    @staticmethod
    def report(job_id: str) -> str:
        return f"jobs/{job_id}/report.json"

    @staticmethod
    def preview(job_id: str) -> str:
        return f"jobs/{job_id}/preview.png"

    @staticmethod
    def panel(job_id: str, name: str, style: int = 0) -> str:
        """A panel photo stylised by the job's network with one of its styles (0: the panel)."""
        return f"jobs/{job_id}/panel/{name}.png" if style == 0 else f"jobs/{job_id}/panel/style-{style}/{name}.png"

    @staticmethod
    def experiment(experiment_id: str) -> str:
        return f"experiments/{experiment_id}/experiment.json"

    @staticmethod
    def experiment_prefix(experiment_id: str) -> str:
        return f"experiments/{experiment_id}"

    @staticmethod
    def experiment_cache(experiment_id: str, name: str) -> str:
        return f"experiments/{experiment_id}/cache/{name}"

    @staticmethod
    def api_key(token_digest: str) -> str:
        return f"keys/{token_digest}.json"

    @staticmethod
    def api_key_prefix() -> str:
        return "keys"

    @staticmethod
    def webhook_secret(owner: str) -> str:
        return f"owners/{owner}/webhook-secret.json"

    @staticmethod
    def usage(owner: str) -> str:
        """The owner's use of the quotas (service/core/usage.py)."""
        return f"owners/{owner}/usage.json"

    @staticmethod
    def owners_prefix() -> str:
        return "owners"

    @staticmethod
    def webhook_outbox_prefix() -> str:
        return "webhooks/outbox"

    @staticmethod
    def webhook_outbox(created_ns: int, delivery_id: str) -> str:
        """Named by creation time first, so a listing sends events in the order they happened."""
        return f"webhooks/outbox/{created_ns:020d}-{delivery_id}.json"

    @staticmethod
    def webhook_pending(job_id: str, created_ns: int, event_id: str) -> str:
        """A marker for an event written into a job's record and not yet in the outbox."""
        return f"webhooks/pending/{job_id}/{created_ns:020d}-{event_id}"

    @staticmethod
    def webhook_pending_prefix() -> str:
        return "webhooks/pending"

    @staticmethod
    def webhook_stats() -> str:
        return "webhooks/stats.json"

    @staticmethod
    def jobs_ended() -> str:
        """Jobs ended so far, by state (service/core/stores/totals.py)."""
        return "metrics/jobs-ended.json"

    @staticmethod
    def stylize_seconds() -> str:
        """Succeeded stylisations' request-to-result seconds, a histogram (service/core/stores/totals.py)."""
        return "metrics/stylize-seconds.json"

    @staticmethod
    def webhook_failed_prefix() -> str:
        return "webhooks/failed"

    @staticmethod
    def webhook_failed(delivery_id: str) -> str:
        return f"webhooks/failed/{delivery_id}.json"

    @staticmethod
    def idempotency(key_digest: str) -> str:
        """The first answer to requests with one Idempotency-Key (its SHA-256, hex)."""
        return f"idempotency/{key_digest}.json"

    @staticmethod
    def active(kind: str, item_id: str) -> str:
        """A marker per unfinished job or stylisation: what the sweepers look at."""
        return f"active/{kind}/{item_id}"

    @staticmethod
    def active_prefix(kind: str) -> str:
        return f"active/{kind}"

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

    @staticmethod
    def stylize_video_input(request_id: str) -> str:
        """A video as uploaded (any container ffmpeg reads; its own suffix is in the record)."""
        return f"stylizations/{request_id}/input-video"

    @staticmethod
    def stylize_video_output(request_id: str) -> str:
        return f"stylizations/{request_id}/output.mp4"

    # --- the list index (service/core/stores/record_store.py, RecordStore.page): one empty marker per job or
    # experiment, everyone's under index/<kind>/all and each owner's under
    # index/<kind>/owner/<owner>, named by sort_key so that key order is newest first, in
    # folders named by the sort key's leading digits (_index_path): a local store's walk to
    # the first page lists a few small folders, not one folder of every entry.

    @staticmethod
    def index_version() -> str:
        """Written once the index holds every record (RecordStore.rebuild_index)."""
        return "index/version"

    @staticmethod
    def index_root(kind: str) -> str:
        """All entries of a kind: everyone's and each owner's."""
        if kind not in INDEX_KINDS:
            raise ValueError(f"no index of {kind!r}")
        return f"index/{kind}"

    @staticmethod
    def index_prefix(kind: str, owner: str | None = None) -> str:
        """Everyone's entries of a kind (owner None), or one owner's."""
        root = Keys.index_root(kind)
        return f"{root}/all" if owner is None else f"{root}/owner/{check_id(owner, 'owner')}"

    @staticmethod
    def index_entries(kind: str, created_at: datetime, item_id: str, owner: str) -> list[str]:
        """A record's entries: everyone's, and its owner's (records made before owners have none)."""
        path = _index_path(sort_key(created_at, item_id))
        return [f"{Keys.index_prefix(kind)}/{path}"] + ([f"{Keys.index_prefix(kind, owner)}/{path}"] if owner else [])

    @staticmethod
    def index_after(kind: str, owner: str | None, cursor: str) -> str:
        """The entry a page continues after: BadRequest unless `cursor` is a sort key (one that
        index_cursor gave), so no cursor can name a key outside the index it pages through."""
        if not _SORT_KEY.fullmatch(str(cursor)):
            raise BadRequest(f"cursor {str(cursor)[:80]!r} is not one this server gave: pass the X-Next-Cursor of the "
                             "previous page, or no cursor for the first page")
        return f"{Keys.index_prefix(kind, owner)}/{_index_path(cursor)}"

    @staticmethod
    def index_cursor(entry: str) -> str:
        """The cursor of the page that follows an entry: its sort key."""
        return entry.rsplit("/", 1)[1]

    @staticmethod
    def index_item_id(entry: str) -> str:
        return entry.rsplit("-", 1)[1]


INDEX_KINDS = ("jobs", "experiments")
_SORT_DIGITS = 17  # microseconds since 1970, enough until the year 5138
_SORT_KEY = re.compile(rf"[0-9]{{{_SORT_DIGITS}}}-[0-9a-f]{{32}}")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _index_path(key: str) -> str:
    """A sort key in folders of its leading digits: 10^12 us (11.6 days), then 10^9 us
    (17 minutes), then 10^5 us (0.1 s). Prefixes of the key, so key order is kept."""
    return f"{key[:5]}/{key[5:8]}/{key[8:12]}/{key}"


def sort_key(created_at: datetime, item_id: str) -> str:
    """Newest first in key order: the creation time in microseconds, inverted and zero-padded,
    then the id (records made in the same microsecond: by id)."""
    if created_at.tzinfo is None:  # written without a zone: ours are UTC
        created_at = created_at.replace(tzinfo=timezone.utc)
    top = 10**_SORT_DIGITS - 1
    us = min(max((created_at - _EPOCH) // timedelta(microseconds=1), 0), top)
    return f"{top - us:0{_SORT_DIGITS}d}-{check_id(item_id, 'record')}"
