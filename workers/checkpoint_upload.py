"""Checkpoints to the store off the heartbeat's path: the newest one the child wrote, uploaded
from a thread of its own."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from service.core.storage import ObjectStore

log = logging.getLogger(__name__)


class CheckpointUploader:
    """Uploads the newest checkpoint the child wrote, in a thread of its own; a newer one
    replaces one still waiting. Each is hard-linked first, so the child may write the next.
    After each upload `on_stored()` runs (the record names it as the job's checkpoint)."""

    def __init__(self, store: ObjectStore, key: str, folder: Path, on_stored: Callable[[], None] = lambda: None):
        self.store, self.key, self.folder, self.on_stored = store, key, folder, on_stored
        self._pending: Path | None = None
        self._busy = False
        self._seen: int | None = None
        self._count = 0
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="checkpoint-upload", daemon=True)
        self._thread.start()

    def offer(self, ckpt: Path) -> None:
        try:
            mtime = ckpt.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if mtime == self._seen:
            return
        self._seen, self._count = mtime, self._count + 1
        staged = self.folder / f"upload-{self._count}.ckpt"
        try:
            os.link(ckpt, staged)
        except FileNotFoundError:  # replaced between stat and link: the next poll sees the new one
            self._seen = None
            return
        with self._cond:
            if self._pending is not None:
                self._pending.unlink(missing_ok=True)
            self._pending = staged
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._pending is None:
                    return
                path, self._pending, self._busy = self._pending, None, True
            try:
                self.store.put_file(self.key, path)
                path.unlink(missing_ok=True)
                self.on_stored()
            except Exception as e:  # noqa: BLE001 - the store, or naming the upload in the record: again
                log.warning("checkpoint upload failed (%s); will retry", e)
                time.sleep(1)
                with self._cond:
                    if self._pending is None and not self._closed:
                        self._pending = path  # nothing newer arrived: retry this one
                    else:
                        path.unlink(missing_ok=True)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def idle(self) -> bool:
        """Every checkpoint offered so far is stored."""
        with self._cond:
            return self._pending is None and not self._busy

    def close(self, *, discard: bool = False) -> None:
        with self._cond:
            if discard and self._pending is not None:
                self._pending.unlink(missing_ok=True)
                self._pending = None
            self._closed = True
            self._cond.notify_all()
