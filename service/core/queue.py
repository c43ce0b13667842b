"""The job queue: task names, queues and the Celery app configuration that the API (which
only sends) and the workers (which consume) must agree on. Nothing heavy is imported here:
a message carries a task name and an id; the worker loads the rest from the store.

Configured for jobs that last hours:
- acks_late + reject_on_worker_lost + prefetch 1: a job whose worker dies is not lost;
- the broker's visibility timeout is above the longest job, so a running job is not
  delivered a second time (celery#5935, #7651);
- job state lives in our own records in the object store, not in Celery's result backend.
"""

from __future__ import annotations

from celery import Celery
from kombu import Exchange, Queue

from service.core import broker  # noqa: F401 - registers the embedded broker's transport
from service.core.errors import Unavailable
from service.core.settings import Settings

TRAIN_QUEUE = "train"
STYLIZE_QUEUE = "stylize"
DATA_QUEUE = "data"  # content sets read and checked image by image: CPU work, no GPU
TRAIN_TASK = "checkerless.train"
STYLIZE_TASK = "checkerless.stylize"
VALIDATE_TASK = "checkerless.validate_content_set"
QUEUES = (TRAIN_QUEUE, STYLIZE_QUEUE, DATA_QUEUE)
ROUTES = {TRAIN_TASK: TRAIN_QUEUE, STYLIZE_TASK: STYLIZE_QUEUE, VALIDATE_TASK: DATA_QUEUE}


def broker_options(settings: Settings) -> dict:
    if settings.embedded_broker:
        # Our variant of kombu's filesystem transport (service/core/broker.py); every folder it
        # uses is under the data folder (control_folder would otherwise default to ./control
        # wherever the process started; claimed messages pass through processed/).
        folder = settings.broker_dir
        for sub in ("in", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        # in and out are the same folder: one queue store shared by every process. Workers look
        # for messages every polling_interval (kombu's default, 1 s, was most of a small
        # stylisation's wait); a look is one listing of a small folder.
        return {"data_folder_in": str(folder / "in"), "data_folder_out": str(folder / "in"),
                "processed_folder": str(folder / "processed"), "store_processed": False,
                "control_folder": str(folder / "control"), "polling_interval": 0.02}
    return {"visibility_timeout": settings.job_time_limit_s + 3600}


def make_celery(settings: Settings) -> Celery:
    app = Celery("checkerless", broker=settings.resolved_broker_url)
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


class JobQueue:
    """Sends ids to the workers; an unreachable broker is `Unavailable`, said plainly."""

    def __init__(self, app: Celery):
        self.app = app

    def send(self, task: str, item_id: str, *, countdown: float | None = None) -> None:
        """`countdown`: run it no sooner than this many seconds from now (the worker that takes
        the message holds it meanwhile, without a task slot)."""
        try:
            self.app.send_task(task, args=[item_id], queue=ROUTES[task], countdown=countdown, retry=True,
                               retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5})
        except Exception as e:  # noqa: BLE001 - any publish failure: the broker is unreachable
            raise Unavailable(f"the job queue is unreachable ({type(e).__name__}); try again later") from None

    def ping(self) -> None:
        with self.app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=3)

    def depths(self) -> dict[str, int]:
        """Messages waiting in each queue (declared as the workers declare them: idempotent)."""
        with self.app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
            return {q.name: q(conn.default_channel).queue_declare().message_count for q in self.app.conf.task_queues}
