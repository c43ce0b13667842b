"""Keeping the attempt's hold on its record while it runs: heartbeats from a thread of their
own (`LeaseKeeper`), and the attempt's last write retried while the store is unreachable
(`write_final`). The rules themselves are service/core/lease.py's."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from service.core.errors import LostLease, NotFound
from service.core.records import JobRecord
from service.core.storage import StoreError

log = logging.getLogger(__name__)
POLL_S = 0.5  # how often a supervising task looks at what it runs (its child, its server, its lease)


class LeaseKeeper:
    """Heartbeats in a thread of their own: `renew()` every `every_s` seconds. The supervisor
    reads `age()` (seconds since the last successful renewal) and `lost` (the record says the
    attempt is no longer ours), and never waits on a store call that hangs."""

    def __init__(self, renew: Callable[[], object], every_s: float, name: str):
        self._renew, self.every_s = renew, every_s
        self.record: object | None = None
        self.lost: LostLease | None = None
        self._renewed = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.record = self._renew()
                self._renewed = time.monotonic()
            except LostLease as e:
                self.lost = e
                return
            except (StoreError, NotFound) as e:
                log.warning("heartbeat failed (%s)", e)

    def age(self) -> float:
        return time.monotonic() - self._renewed

    def stop(self) -> None:
        self._stop.set()


def write_final(what: str, fn: Callable[[], JobRecord], *, for_s: float) -> JobRecord | None:
    """A final write, retried while the store is unreachable; None if it never got through
    (the job then looks dead to the sweeper, which requeues it: no outcome is lost)."""
    deadline = time.monotonic() + for_s
    while True:
        try:
            return fn()
        except StoreError as e:
            if time.monotonic() > deadline:
                log.error("could not record %s: %s", what, e)
                return None
            time.sleep(1)
