"""Processes started from one thread that lives as long as this process. A child that asks for
SIGKILL when its parent dies (PR_SET_PDEATHSIG: the stylise servers, the fork server of
training children) gets it when the *thread* that started it ends, in Linux's sense, so a
short-lived caller (a reader thread, a Celery task's thread, a test's thread) must not be
that thread."""

from __future__ import annotations

import os
import subprocess
import threading
from concurrent.futures import Future
from queue import SimpleQueue


class _Spawner:
    def __init__(self):
        self.pid = os.getpid()
        self._jobs: SimpleQueue = SimpleQueue()
        threading.Thread(target=self._run, name="spawner", daemon=True).start()

    def _run(self) -> None:
        while True:
            future, args, kwargs = self._jobs.get()
            try:
                future.set_result(subprocess.Popen(*args, **kwargs))
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                future.set_exception(e)

    def popen(self, *args, **kwargs) -> subprocess.Popen:
        future: Future = Future()
        self._jobs.put((future, args, kwargs))
        return future.result()


_spawner: _Spawner | None = None
_lock = threading.Lock()


def popen(*args, **kwargs) -> subprocess.Popen:
    """subprocess.Popen(*args, **kwargs), started from this process's long-lived thread."""
    global _spawner
    with _lock:
        if _spawner is None or _spawner.pid != os.getpid():  # threads do not survive a fork
            _spawner = _Spawner()
    return _spawner.popen(*args, **kwargs)
