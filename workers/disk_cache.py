"""Files on the worker's disk, bounded by bytes, the least recently used going first: what the
content-image cache (workers/content_cache.py) and the checkpoint cache of the stylise path
(workers/warm_stylize.py CheckpointCache) are both built on.

Safe with several processes reading and writing one folder at once, with no lock on the read
path:
- a file appears whole or not at all (written beside its place, then renamed);
- a read that loses the file to another process's eviction is simply a miss; a reader that
  must keep a file while it uses it takes a hard link of its own (`link`);
- the bytes held are a counter in a small file changed under flock; when it passes the budget,
  the folder is scanned once and the least recently used files (by mtime, touched on every hit)
  go until it is under the low-water mark, so scans are rare however many files it holds.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

LOW_WATER = 0.9  # an eviction frees down to this fraction of the budget, so the next is far off
_TEMP = ".part-"  # files being written; left by a killed process, removed by a later scan
_STALE_TEMP_S = 3600.0


class DiskCache:
    """Files named by the caller (a digest: two characters of it name the subfolder)."""

    def __init__(self, folder: Path, budget_bytes: int):
        self.folder, self.budget = Path(folder), budget_bytes

    def path(self, name: str) -> Path:
        return self.folder / name[:2] / name

    def hit(self, name: str) -> Path | None:
        """The file, marked recently used; None if it is not held."""
        path = self.path(name)
        try:
            os.utime(path)
        except FileNotFoundError:
            return None
        return path

    def temp(self) -> Path:
        """A new file name in the cache's folder, for a file to be added by `add_file` (the same
        filesystem, so the add is a rename); removed by a later scan if never added."""
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder / f"{_TEMP}{uuid.uuid4().hex}"

    def add_bytes(self, name: str, data: bytes) -> Path:
        tmp = self.temp()
        try:
            tmp.write_bytes(data)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return self.add_file(name, tmp)

    def add_file(self, name: str, src: Path) -> Path:
        """`src` (from `temp()`) becomes the file `name`; then the budget is kept, never by
        evicting this file."""
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            size = src.stat().st_size
            os.replace(src, path)
        finally:
            src.unlink(missing_ok=True)
        with self._counter() as (held, write):
            held += size  # two processes adding one file count it twice: the scan corrects it
            if held > self.budget:
                held = self._evict(keep=path)
            write(held)
        return path

    @staticmethod
    def link(path: Path, dest: Path) -> Path:
        """`dest` as a hard link to the held file `path` (a copy on another filesystem), so no
        eviction pulls it from under its user. FileNotFoundError if `path` was evicted."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.unlink(missing_ok=True)
        try:
            os.link(path, dest)
        except OSError as e:
            if not path.exists():
                raise FileNotFoundError(path) from e
            shutil.copyfile(path, dest)
        return dest

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

    def _files(self) -> Iterator[os.DirEntry]:
        for sub in self.folder.iterdir():
            if sub.is_dir() and len(sub.name) == 2:
                yield from os.scandir(sub)

    def _evict(self, keep: Path) -> int:
        """Called under the counter's lock: drop least recently used files (never `keep`) to
        the low-water mark, and temporary files left by killed processes; return the bytes left."""
        files, now = [], time.time()
        for entry in self._files():
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue
            files.append((st.st_mtime, st.st_size, entry.path))
        for entry in os.scandir(self.folder):
            if entry.name.startswith(_TEMP):
                try:
                    if now - entry.stat().st_mtime > _STALE_TEMP_S:
                        Path(entry.path).unlink(missing_ok=True)
                except FileNotFoundError:
                    pass
        held = sum(size for _, size, _ in files)
        for _, size, name in sorted(files):
            if held <= self.budget * LOW_WATER:
                break
            if Path(name) != keep:
                Path(name).unlink(missing_ok=True)
                held -= size
        return held

    def held_bytes(self) -> int:
        """The bytes of the files held now (a scan; for tests and the benchmark)."""
        total = 0
        for entry in self._files():
            try:
                total += entry.stat().st_size
            except FileNotFoundError:
                pass
        return total
