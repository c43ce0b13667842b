"""Celery tasks: thin wrappers that take an id and hand it to the supervisor."""

from __future__ import annotations

import logging
import threading

from celery import current_app, shared_task
from celery.signals import worker_ready, worker_shutting_down

from service.config import Settings
from service.storage import open_store
from workers.messages import STYLIZE_TASK, TRAIN_TASK
from workers.supervisor import requeue_stale_jobs, run_stylize, run_train_job

log = logging.getLogger(__name__)


def _settings() -> Settings:
    return getattr(current_app.conf, "checkerless_settings", None) or Settings()


@shared_task(name=TRAIN_TASK, acks_late=True, reject_on_worker_lost=True)
def train_job(job_id: str) -> str | None:
    settings = _settings()
    state = run_train_job(settings, open_store(settings), job_id)
    return state.value if state else None


@shared_task(name=STYLIZE_TASK, acks_late=True, reject_on_worker_lost=True)
def stylize_job(request_id: str) -> str | None:
    settings = _settings()
    state = run_stylize(settings, open_store(settings), request_id)
    return state.value if state else None


_stop = threading.Event()


@worker_ready.connect
def start_sweeper(sender=None, **_) -> None:
    """In the worker's main process: requeue running jobs whose worker died (their heartbeat
    stopped), so a job resumes from its last checkpoint instead of waiting for the broker's
    visibility timeout (set above the longest job, hours away)."""
    app = getattr(sender, "app", None) or current_app
    settings = getattr(app.conf, "checkerless_settings", None) or Settings()
    if not getattr(app.conf, "checkerless_sweep", False):  # set by `checkerless worker` for train workers
        return

    def loop() -> None:
        store = open_store(settings)
        while not _stop.wait(max(1.0, settings.stale_after_s / 3)):
            try:
                requeue_stale_jobs(settings, store, lambda job_id: app.send_task(TRAIN_TASK, args=[job_id]))
            except Exception:  # noqa: BLE001 - a store hiccup must not kill the sweeper
                log.exception("sweeping stale jobs failed; will try again")

    threading.Thread(target=loop, name="checkerless-sweeper", daemon=True).start()


@worker_shutting_down.connect
def stop_sweeper(**_) -> None:
    _stop.set()
