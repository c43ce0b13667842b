"""The worker's Celery app: the shared configuration (service/core/queue.py) plus our tasks.
Importing this module never imports torch."""

from __future__ import annotations

from celery import Celery

from service.core.queue import make_celery
from service.core.settings import Settings


def make_worker_app(settings: Settings, queues: list[str]) -> Celery:
    app = make_celery(settings)
    app.conf.checkerless_queues = list(queues)  # which sweeps this worker runs (workers/tasks.py)
    import workers.tasks  # noqa: F401 - registers the tasks and the signal handlers

    return app
