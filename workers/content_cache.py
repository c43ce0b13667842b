"""Content images on the worker's disk, shared by every job (and every DataLoader process) of
the worker: a folder of files named by the SHA-256 of what identifies a stored object (the
store, the bucket, the key and the object's size), bounded by bytes.

Safe with several processes reading and writing at once, with no lock on the read path:
- a file appears whole or not at all (written beside its place, then renamed);
- a read that loses the file to another process's eviction is simply a miss;
- the bytes held are a counter in a small file changed under flock; when it passes the budget,
  the folder is scanned once and the least recently used files (by mtime, touched on every hit)
  go until it is under the low-water mark, so scans are rare however large the set.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

LOW_WATER = 0.9  # an eviction frees down to this fraction of the budget, so the next is far off
_TEMP = ".part-"  # files being written; left by a killed process, removed by a later scan
_STALE_TEMP_S = 3600.0


class ContentCache:
    def __init__(self, folder: Path, budget_bytes: int):
        self.folder, self.budget = Path(folder), budget_bytes
        self.hits = self.misses = 0  # this process's, for the benchmark and the tests

    @staticmethod
    def identity(store: str, bucket: str | None, key: str, size: int) -> str:
        return hashlib.sha256(f"{store}\0{bucket or ''}\0{key}\0{size}".encode()).hexdigest()

    def path(self, identity: str) -> Path:
        return self.folder / identity[:2] / identity

    def get(self, identity: str, size: int, fetch: Callable[[], bytes]) -> bytes:
        """The object's bytes: from the disk, or from `fetch()` (then kept). A file of another
        size than `size` (a write cut short by a crash) is fetched again."""
        path = self.path(identity)
        try:
            data = path.read_bytes()
            if len(data) == size:
                _touch(path)
                self.hits += 1
                return data
        except FileNotFoundError:
            pass
        data = fetch()
        self.misses += 1
        self._keep(path, data)
        return data

    def _keep(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{_TEMP}{uuid.uuid4().hex}")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        with self._counter() as (held, write):
            held += len(data)  # two processes keeping one object count it twice: the scan corrects it
            if held > self.budget:
                held = self._evict()
            write(held)

    @contextmanager
    def _counter(self) -> Iterator[tuple[int, Callable[[int], None]]]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "bytes", "a+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            try:
                held = int(f.read() or b"0")
            except ValueError:
                held = self.budget + 1  # unreadable: scan
            def write(n: int) -> None:
                f.seek(0)
                f.truncate()
                f.write(str(n).encode())
            yield held, write

    def _evict(self) -> int:
        """Called under the counter's lock: drop least recently used files to the low-water
        mark; return the bytes left."""
        files, now = [], time.time()
        for sub in self.folder.iterdir():
            if not sub.is_dir():
                continue
            for entry in os.scandir(sub):
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                if entry.name.startswith(_TEMP):
                    if now - st.st_mtime > _STALE_TEMP_S:
                        Path(entry.path).unlink(missing_ok=True)
                    continue
                files.append((st.st_mtime, st.st_size, entry.path))
        held = sum(size for _, size, _ in files)
        for _, size, name in sorted(files):
            if held <= self.budget * LOW_WATER:
                break
            Path(name).unlink(missing_ok=True)
            held -= size
        return held

    def held_bytes(self) -> int:
        """The bytes of the files kept now (a scan; for tests and the benchmark)."""
        return sum(p.stat().st_size for p in self.folder.glob("??/*") if not p.name.startswith(_TEMP))


def _touch(path: Path) -> None:
    try:
        os.utime(path)  # recently used
    except FileNotFoundError:
        pass  # evicted since we read it: our copy is whole
