"""Webhook announcements of job state changes, beside the job records (service/core/webhooks.py
delivers them).

An event is written with the change that made it: `announce` puts it into the record inside
the caller's compare-and-set, marked first (Keys.webhook_pending); `flush` then moves it to the
outbox and out of the record; `flush_pending` finds what a crash left between those writes.
So whatever of the writes a crash leaves, no event is lost and none goes out twice."""

from __future__ import annotations

import logging
import time

from service.core import webhooks
from service.core.cas import Skip
from service.core.errors import NotFound
from service.core.keys import Keys, check_id
from service.core.records import JobRecord
from service.core.stores.record_store import RecordStore

log = logging.getLogger(__name__)


class Announcements:
    def __init__(self, records: RecordStore):
        self.records = records
        self.store = records.store

    def announce(self, r: JobRecord) -> None:
        """A state change, for the job's webhook if it has one: its event goes into the record
        (written by the caller's compare-and-set), marked first, so that whatever of the two
        writes a crash leaves, flush_pending finds the event or finds there is none."""
        if r.webhook_url:
            event = webhooks.job_event(r)
            self.store.put_bytes(Keys.webhook_pending(r.id, event["created_ns"], event["id"]), b"")
            r.pending_events.append(event)

    def flush(self, record: JobRecord) -> None:
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

            self.records.update(Keys.job(record.id), JobRecord, drop, f"job {record.id!r}")
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
                record = self.records.read(Keys.job(check_id(job_id, "job")), JobRecord, f"job {job_id!r}")[0]
            except NotFound:  # the job was deleted: so are its events
                for key in keys:
                    self.store.delete(key)
                continue
            pending = {e["id"] for e in record.pending_events}
            self.flush(record)
            moved += len(pending)
            for key in keys:
                created_ns, event_id = key.rsplit("/", 1)[1].split("-", 1)
                if event_id not in pending and time.time_ns() - int(created_ns) > settle_s * 1e9:
                    self.store.delete(key)
        return moved
