"""The worker processes `checkerless serve` runs beside its API, kept alive: one that exits
while serving is started again (at once, then backing off if it keeps dying), said in the
log and in /v1/ready. A job whose worker died mid-run goes back on the queue when its lease
goes stale (workers/sweepers.py), so the restarted worker finishes it."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

from service.core.protocol import die_with_parent

log = logging.getLogger("checkerless.serve")
# Queues and how many tasks each worker takes at once. Three workers: neither a stylise request
# nor a content set to validate may wait behind hours of training; the stylise worker's warm
# server serves up to 4 requests together.
WORKERS = (("train", 1), ("stylize", 4), ("data", 1))
BACKOFF_S = (0.0, 1.0, 5.0, 30.0)  # before the 1st, 2nd, 3rd... restart in a row
STEADY_S = 120.0  # a worker that lived this long starts its next restart from no backoff


class _Worker:
    def __init__(self, queues: str, concurrency: int, env: dict[str, str]):
        self.queues, self.concurrency, self.env = queues, concurrency, env
        self.restarts, self.in_a_row, self.last_exit = 0, 0, None
        self.started_at = 0.0
        self.proc = self._start()

    def _start(self) -> subprocess.Popen:
        self.started_at = time.monotonic()
        return subprocess.Popen([sys.executable, "-m", "service.cli", "worker", "--queues", self.queues,
                                 "--concurrency", str(self.concurrency), "--loglevel", "WARNING"],
                                env=self.env, start_new_session=True,
                                preexec_fn=lambda: die_with_parent(signal.SIGTERM))

    def status(self) -> str:
        alive = self.proc.poll() is None
        if alive and not self.restarts:
            return "ok"
        state = "ok" if alive else "down"
        return f"{state} (restarted {self.restarts} times; last exit code {self.last_exit})"


class EmbeddedWorkers:
    def __init__(self, env: dict[str, str], *, poll_s: float = 0.5):
        self.workers = {q: _Worker(q, c, env) for q, c in WORKERS}
        self.poll_s, self._stopping = poll_s, threading.Event()
        self._thread = threading.Thread(target=self._watch, name="embedded-workers", daemon=True)
        self._thread.start()

    def status(self) -> dict[str, str]:
        """Each worker's state, for /v1/ready: "ok", or what happened to it."""
        return {f"worker {q}": w.status() for q, w in self.workers.items()}

    def _watch(self) -> None:
        while not self._stopping.wait(self.poll_s):
            for queue, w in self.workers.items():
                code = w.proc.poll()
                if code is None or self._stopping.is_set():
                    continue
                lived = time.monotonic() - w.started_at
                if lived > STEADY_S:
                    w.in_a_row = 0
                wait = BACKOFF_S[min(w.in_a_row, len(BACKOFF_S) - 1)]
                w.in_a_row += 1
                w.last_exit = code
                log.warning("the %s worker (pid %d) exited with code %s after %.0f s; starting it again in %.0f s",
                            queue, w.proc.pid, code, lived, wait)
                if self._stopping.wait(wait):
                    return
                w.proc = w._start()
                w.restarts += 1

    def stop(self) -> None:
        """SIGTERM to each worker's main process only (as `docker compose stop` sends it): a warm
        shutdown, in which a running job checkpoints and goes back on the queue."""
        self._stopping.set()
        self._thread.join(timeout=5)
        procs = [w.proc for w in self.workers.values()]
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
