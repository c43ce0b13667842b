"""Ids and every storage key, in one place. Keys are built from ids we made (uuid4 hex),
never from user text."""

from __future__ import annotations

import uuid

from service.core.errors import NotFound


def new_id() -> str:
    return uuid.uuid4().hex


def check_id(value: str, what: str) -> str:
    """An id we could have made, else NotFound (so a path like '../x' is simply unknown)."""
    if not (len(value) == 32 and all(c in "0123456789abcdef" for c in value)):
        raise NotFound(f"no {what} {value!r}")
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
    def job_prefix(job_id: str) -> str:
        return f"jobs/{job_id}"

    @staticmethod
    def job(job_id: str) -> str:
        return f"jobs/{job_id}/job.json"

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
    def webhook_outbox_prefix() -> str:
        return "webhooks/outbox"

    @staticmethod
    def webhook_outbox(created_ns: int, delivery_id: str) -> str:
        """Named by creation time first, so a listing sends events in the order they happened."""
        return f"webhooks/outbox/{created_ns:020d}-{delivery_id}.json"

    @staticmethod
    def webhook_stats() -> str:
        return "webhooks/stats.json"

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
