"""The worker's SIGTERM handler (workers/tasks.py `drain`), called again from within itself as a
second SIGTERM does when it interrupts the first."""

import os
import threading

import pytest

from workers import tasks
from workers.drain import drain_marker


@pytest.fixture
def fresh_drain(monkeypatch, tmp_path):
    monkeypatch.setenv("CHECKERLESS_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(tasks, "_draining", False, raising=False)
    monkeypatch.setattr(tasks, "_stop", threading.Event())


def test_a_second_sigterm_inside_the_first_returns_at_once(fresh_drain):
    """The first call marks the drain; a nested one, arriving while the interrupted call holds
    the stop event's lock, must not wait on that lock (the worker then hung for ever)."""
    tasks.drain()
    assert tasks._stop.is_set() and drain_marker(tasks._settings(), os.getpid()).exists()
    with tasks._stop._cond:  # as the interrupted `_stop.set()` holds it
        nested = threading.Thread(target=tasks.drain, daemon=True)
        nested.start()
        nested.join(timeout=5)
        assert not nested.is_alive()
