"""The Celery app, configured for jobs that last hours (DESIGN.md, "Workers and Celery").

- acks_late + reject_on_worker_lost + prefetch 1: a job whose worker dies is not lost;
- the broker's visibility timeout is above the longest job, so a running job is not
  delivered a second time (celery#5935, #7651);
- job state lives in our own records in the object store, not in Celery's result backend.
Importing this module never imports torch.
"""

from __future__ import annotations

from celery import Celery
from kombu import Exchange, Queue

from service.config import Settings
from workers.messages import QUEUES, ROUTES


def broker_options(settings: Settings) -> dict:
    if settings.embedded_broker:
        folder = settings.data_dir / "broker"
        for sub in ("in", "processed"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        # in and out are the same folder: one queue store shared by every process.
        return {"data_folder_in": str(folder / "in"), "data_folder_out": str(folder / "in"),
                "processed_folder": str(folder / "processed"), "store_processed": False}
    return {"visibility_timeout": settings.job_time_limit_s + 3600}


def make_celery(settings: Settings | None = None) -> Celery:
    settings = settings or Settings()
    app = Celery("checkerless", broker=settings.resolved_broker_url, include=["workers.tasks"])
    app.conf.update(
        broker_transport_options=broker_options(settings),
        broker_connection_retry_on_startup=True,
        task_queues=[Queue(q, Exchange(q, type="direct"), routing_key=q) for q in QUEUES],
        task_routes={name: {"queue": queue} for name, queue in ROUTES.items()},
        task_default_queue=QUEUES[0],
        task_create_missing_queues=False,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_hijack_root_logger=False,
    )
    app.conf.checkerless_settings = settings
    return app
