"""The sweepers every worker runs (workers/tasks.py, every third of the stale timeout): records whose worker died
are requeued, queued jobs whose message was lost are sent again, old stylisations go, and owners' storage is
measured again when its measurement grows old."""

from __future__ import annotations

import logging
from collections.abc import Callable

from service.core import usage
from service.core.settings import Settings
from service.core.storage import ObjectStore
from service.core.stores import Stores

log = logging.getLogger(__name__)


def sweep(settings: Settings, store: ObjectStore, *, send_train: Callable[[str], None] | None = None,
          send_stylize: Callable[[str], None] | None = None,
          train_queue_empty: Callable[[], bool] | None = None,
          stylize_queue_empty: Callable[[], bool] | None = None) -> list[str]:
    """Running jobs and stylisations whose heartbeat stopped (their worker died, or lost the
    store) go back on the queue; the attempt count stops one that kills its worker every time.
    A job or stylisation queued for resend_queued_after_s while its queue is empty lost its
    message (a publish refused after its requeue, a broker that lost its data, a delayed
    message held by a worker that died): it is sent again. Stylise workers also delete
    stylisations past their keeping time."""
    stores, sent = Stores(store), []
    if send_train is not None:
        queued = []
        for job_id in stores.jobs.active_ids():
            if stores.jobs.requeue_if_stale(job_id, stale_after_s=settings.stale_after_s):
                log.warning("job %s: no heartbeat for %.0f s; requeued", job_id, settings.stale_after_s)
                queued.append(job_id)
        # Only when nothing waits in the queue: a long queue is not a lost message, and each
        # sweep that sent duplicates to it would make it longer.
        if train_queue_empty is not None and train_queue_empty():
            for job_id in stores.jobs.active_ids():
                if stores.jobs.claim_resend(job_id, after_s=settings.resend_queued_after_s):
                    log.warning("job %s: queued for %.0f s with no message in the queue; sent again", job_id,
                                settings.resend_queued_after_s)
                    queued.append(job_id)
        sent += _send_each(queued, send_train)
    if send_stylize is not None:
        stores.stylizations.delete_old(older_than_s=settings.stylization_keep_s)
        requeued = [i for i in stores.stylizations.active_ids()
                    if stores.stylizations.requeue_if_stale(i, stale_after_s=settings.stale_after_s,
                                                            max_attempts=settings.max_attempts)]
        if stylize_queue_empty is not None and stylize_queue_empty():
            for request_id in stores.stylizations.active_ids():
                if stores.stylizations.claim_resend(request_id, after_s=settings.resend_queued_after_s):
                    log.warning("stylization %s: queued for %.0f s with no message in the queue; sent again",
                                request_id, settings.resend_queued_after_s)
                    requeued.append(request_id)
        sent += _send_each(requeued, send_stylize)
    return sent


def measure_storage(settings: Settings, store: ObjectStore) -> list[str]:
    """Owners whose storage measurement is older than storage_measure_s are measured again
    (service/core/usage.py), each by the one sweeper whose claim wins: the listing of every
    object an owner keeps happens here, never on a request's path."""
    stores, measured, every = Stores(store), [], None
    for owner in usage.owners(store):
        if usage.claim_measure(store, owner, settings.storage_measure_s):
            every = every or stores.everyone()  # read once for every owner this sweep measures
            usage.measure_storage(stores, owner, every)
            measured.append(owner)
    return measured


def _send_each(ids: list[str], send: Callable[[str], None]) -> list[str]:
    """Each id sent on its own: a refused send leaves that one queued (a job is sent again by a
    later sweep) and does not stop the rest."""
    sent = []
    for item_id in ids:
        try:
            send(item_id)
            sent.append(item_id)
        except Exception as e:  # noqa: BLE001 - the broker refused or is unreachable
            log.error("%s could not be sent (%s); a later sweep sends it again", item_id, e)
    return sent
