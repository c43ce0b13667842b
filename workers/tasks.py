"""Celery tasks: thin wrappers that take an id and hand it to its task (train_task.py,
stylize_task.py, validate.py); and the worker's own signal handlers: the sweepers
(sweepers.py: requeue work whose worker died) and the drain marker (drain.py) that asks
running supervisors to checkpoint and requeue when the worker is told to stop."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from celery import current_app, shared_task
from celery.signals import worker_ready, worker_shutting_down

from service.core import webhooks
from service.core.stores import Stores
from service.core.queue import (DATA_QUEUE, STYLIZE_QUEUE, STYLIZE_TASK, TRAIN_QUEUE, TRAIN_TASK, VALIDATE_TASK,
                                JobQueue)
from service.core.settings import Settings
from service.core.storage import ObjectStore, StoreUnavailable, open_store
from workers.gpus import GpuSlots
from workers.drain import drain_marker
from workers.stylize_task import run_stylize
from workers.sweepers import measure_storage, sweep
from workers.train_task import run_train_job
from workers.validate import sweep_content_sets, validate_content_set
from workers.warm_stylize import warm_stylizer

log = logging.getLogger(__name__)


def _settings(app=None) -> Settings:
    return getattr((app or current_app).conf, "checkerless_settings", None) or Settings()


@shared_task(name=TRAIN_TASK, acks_late=True, reject_on_worker_lost=True, bind=True)
def train_job(self, job_id: str) -> str | None:
    settings = _settings()
    queue = JobQueue(self.app)
    state = run_train_job(settings, open_store(settings), job_id, worker=self.request.hostname or socket.gethostname(),
                          requeue=lambda i: queue.send(TRAIN_TASK, i), slots=_slots(settings))
    return state.value if state else None


_cached_slots: tuple[Settings, GpuSlots] | None = None


def _slots(settings: Settings) -> GpuSlots:
    """This worker's GPUs, found once per process (`nvidia-smi -L` takes a moment)."""
    global _cached_slots
    if _cached_slots is None or _cached_slots[0] is not settings:
        _cached_slots = (settings, GpuSlots.of(settings))
    return _cached_slots[1]


@shared_task(name=STYLIZE_TASK, acks_late=True, reject_on_worker_lost=True, bind=True)
def stylize_job(self, request_id: str) -> str | None:
    settings = _settings()
    queue = JobQueue(self.app)
    # A video that finds this process's video lane taken is sent again with a countdown: the
    # worker holds such a message without a task slot, so waiting videos never keep images out.
    state = run_stylize(settings, _store(settings), request_id, requeue=lambda i: queue.send(STYLIZE_TASK, i),
                        hand_back=lambda i: queue.send(STYLIZE_TASK, i, countdown=settings.stylize_video_retry_s))
    return state.value if state else None


@shared_task(name=VALIDATE_TASK, acks_late=True, reject_on_worker_lost=True, bind=True)
def validate_set(self, set_id: str) -> str | None:
    """A content set's images read and checked (workers/validate.py); a redelivery after a
    worker died starts it again from scratch, one of a finished set does nothing."""
    settings = _settings()
    try:
        state = validate_content_set(settings, _store(settings), set_id)
    except StoreUnavailable as e:  # tried again once its record is stale: a new attempt, from scratch
        log.warning("content set %s: the store is unreachable (%s); trying again in %.0f s", set_id, e,
                    settings.stale_after_s)
        raise self.retry(exc=e, countdown=settings.stale_after_s + 1, max_retries=settings.max_attempts) from None
    return state.value if state else None


_cached_store: tuple[Settings, ObjectStore] | None = None


def _store(settings: Settings) -> ObjectStore:
    """One store client per process: making an S3 client (and checking its bucket) costs more
    than a small stylisation's round trips. boto3's clients are thread-safe."""
    global _cached_store
    if _cached_store is None or _cached_store[0] is not settings:
        _cached_store = (settings, open_store(settings))
    return _cached_store[1]


_stop = threading.Event()


@worker_ready.connect
def start_sweeper(sender=None, **_) -> None:
    """In the worker's main process: requeue running work whose worker died (its heartbeat
    stopped), so a job resumes from its last checkpoint (and a content set's validation starts
    again) instead of waiting for the broker's visibility timeout (set above the longest job,
    hours away)."""
    app = getattr(sender, "app", None) or current_app
    settings = _settings(app)
    drain_marker(settings, os.getpid()).unlink(missing_ok=True)  # a marker left by an earlier process of this pid
    if getattr(app.conf, "checkerless_prestart_stylize", False):
        # Tasks run as threads of this process (service/cli/launch.py): its stylise server can
        # start now, so the first request does not wait for torch to import.
        warm_stylizer(settings).prestart()
    queues = getattr(app.conf, "checkerless_queues", [])
    queue = JobQueue(app)
    send_train = (lambda i: queue.send(TRAIN_TASK, i)) if TRAIN_QUEUE in queues else None
    send_stylize = (lambda i: queue.send(STYLIZE_TASK, i)) if STYLIZE_QUEUE in queues else None
    send_validate = (lambda i: queue.send(VALIDATE_TASK, i)) if DATA_QUEUE in queues else None
    if send_train is None and send_stylize is None and send_validate is None:
        return

    def loop() -> None:
        store = open_store(settings)
        # Owners' storage is looked at a few times per measurement's age, not every sweep, and not
        # in the burst of a worker's start.
        measure_at = time.monotonic() + settings.storage_measure_s / 4
        while not _stop.wait(max(1.0, settings.stale_after_s / 3)):
            try:
                sweep(settings, store, send_train=send_train, send_stylize=send_stylize,
                      train_queue_empty=lambda: queue.depths()[TRAIN_QUEUE] == 0,
                      stylize_queue_empty=lambda: queue.depths()[STYLIZE_QUEUE] == 0)
                if send_validate is not None:
                    sweep_content_sets(settings, store, send_validate)
                if time.monotonic() >= measure_at:
                    measure_at = time.monotonic() + settings.storage_measure_s / 4
                    measure_storage(settings, store)
            except Exception:  # noqa: BLE001 - a store or broker hiccup must not kill the sweeper
                log.exception("sweeping stale work failed; will try again")

    threading.Thread(target=loop, name="checkerless-sweeper", daemon=True).start()

    def deliver() -> None:  # webhooks: every worker sends, a compare-and-set gives each event to one
        store = open_store(settings)
        while not _stop.wait(1.0):
            try:
                Stores(store).announcements.flush_pending()  # events a crash left between a record and the outbox
                webhooks.deliver_due(store, allow_private=settings.webhook_allow_private,
                                     attempts=settings.webhook_attempts, retry_base_s=settings.webhook_retry_base_s)
            except Exception:  # noqa: BLE001 - a store hiccup must not stop deliveries
                log.exception("delivering webhooks failed; will try again")

    threading.Thread(target=deliver, name="checkerless-webhooks", daemon=True).start()


_draining = False


@worker_shutting_down.connect
def drain(**_) -> None:
    """SIGTERM (as `docker compose stop` sends): Celery waits for running tasks; the marker
    tells their supervisors to stop training at the next step, keep the checkpoint and
    requeue the job, so it resumes on another worker within the stop grace period.

    Celery calls this from its signal handler, which a second SIGTERM can interrupt (a worker
    `serve` restarted gets one as its parent thread ends and one from `serve`'s stop): a nested
    call returns at once. Had it called `_stop.set()` again while the interrupted one held the
    event's lock, the worker waited for ever (seen: a soak's stylise worker outlived its serve)."""
    global _draining
    if _draining:
        return
    _draining = True
    _stop.set()
    settings = _settings()
    marker = drain_marker(settings, os.getpid())
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
