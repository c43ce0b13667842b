"""The worker asked to stop (workers/tasks.py writes the marker on SIGTERM): a task that sees
it hands its work back to the queue instead of starting it."""

from __future__ import annotations

import os
from pathlib import Path

from service.core.settings import Settings


def draining(settings: Settings) -> bool:
    """Our Celery worker was asked to stop (see workers/tasks.py): its pool processes are our
    parent's children, so the marker is named by our parent's pid (or by ours, in a worker
    that runs its tasks as threads)."""
    return drain_marker(settings, os.getppid()).exists() or drain_marker(settings, os.getpid()).exists()


def drain_marker(settings: Settings, worker_pid: int) -> Path:
    return settings.work_dir / f"drain-{worker_pid}"
