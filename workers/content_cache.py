"""Content images on the worker's disk, shared by every job (and every DataLoader process) of
the worker: files named by the SHA-256 of what identifies a stored object (the store, the
bucket, the key and the object's size), bounded by bytes, in a disk cache
(workers/disk_cache.py: whole files only, least recently used out, safe across processes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from workers.disk_cache import DiskCache


class ContentCache:
    def __init__(self, folder: Path, budget_bytes: int):
        self.files = DiskCache(folder, budget_bytes)
        self.hits = self.misses = 0  # this process's, for the benchmark and the tests

    @staticmethod
    def identity(store: str, bucket: str | None, key: str, size: int) -> str:
        return hashlib.sha256(f"{store}\0{bucket or ''}\0{key}\0{size}".encode()).hexdigest()

    def path(self, identity: str) -> Path:
        return self.files.path(identity)

    def get(self, identity: str, size: int, fetch: Callable[[], bytes]) -> bytes:
        """The object's bytes: from the disk, or from `fetch()` (then kept). A file of another
        size than `size` (a write cut short by a crash) is fetched again."""
        path = self.files.hit(identity)
        if path is not None:
            try:
                data = path.read_bytes()
                if len(data) == size:
                    self.hits += 1
                    return data
            except FileNotFoundError:
                pass  # evicted since it was touched: a miss
        data = fetch()
        self.misses += 1
        self.files.add_bytes(identity, data)
        return data

    def held_bytes(self) -> int:
        """The bytes of the files kept now (a scan; for tests and the benchmark)."""
        return self.files.held_bytes()
