"""GPU slots: which GPUs a train worker hands out, and which of them each training task holds.

The supervising process never imports torch (nor touches CUDA: it forks), so the GPUs are
found without it: the `gpus` setting if given, else `CUDA_VISIBLE_DEVICES` if set, else
`nvidia-smi -L`; with `device` "cpu" and no `gpus` setting, none. A task holds a GPU by an
exclusive `flock` on a file named after it under the worker's scratch folder, so two pool
processes (or two workers on one machine sharing that folder) never take the same GPU, and a
process that dies (SIGKILL too) lets go of its GPUs with it.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from service.core.settings import Settings

POLL_S = 0.5
_GPU_LINE = re.compile(r"^GPU (\d+):")
_MIG_LINE = re.compile(r"^\s+MIG .*\(UUID: (MIG-[^)]+)\)")


def parse_nvidia_smi(text: str) -> list[str]:
    """`nvidia-smi -L` as CUDA_VISIBLE_DEVICES entries: each GPU's index, or, for a GPU split
    into MIG instances, each instance's UUID (CUDA names those only by UUID)."""
    ids: list[str] = []
    for line in text.splitlines():
        if m := _GPU_LINE.match(line):
            ids.append(m.group(1))
        elif (m := _MIG_LINE.match(line)) and ids:
            if not ids[-1].startswith("MIG-"):
                ids.pop()  # the GPU itself is not usable whole once split
            ids.append(m.group(1))
    return ids


def _visible_env() -> list[str] | None:
    """CUDA_VISIBLE_DEVICES as CUDA reads it: entries up to the first invalid one; None if unset."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    ids = []
    for entry in value.split(","):
        entry = entry.strip()
        if not entry or entry.startswith("-"):
            break
        ids.append(entry)
    return ids


def _nvidia_smi() -> list[str]:
    try:
        done = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return parse_nvidia_smi(done.stdout) if done.returncode == 0 else []


def worker_gpus(settings: Settings) -> list[str]:
    """The GPUs this worker trains on, as CUDA_VISIBLE_DEVICES entries; [] on a CPU worker."""
    visible = _visible_env()
    if settings.gpus is not None:
        found = visible if visible is not None else [str(i) for i in range(settings.gpus)]
        if len(found) < settings.gpus:
            raise ValueError(f"CHECKERLESS_GPUS is {settings.gpus} but CUDA_VISIBLE_DEVICES names only "
                             f"{len(found)} GPU(s)")
        return found[:settings.gpus]
    if settings.device == "cpu":
        return []
    return visible if visible is not None else _nvidia_smi()


class GpuSlots:
    """The GPUs of one worker, held by its tasks through lock files in `folder`."""

    def __init__(self, gpus: list[str], folder: Path):
        self.gpus, self.folder = list(gpus), folder

    @classmethod
    def of(cls, settings: Settings) -> GpuSlots:
        return cls(worker_gpus(settings), settings.work_dir / "gpus")

    def _lock(self, name: str, stack: ExitStack) -> bool:
        self.folder.mkdir(parents=True, exist_ok=True)
        f = stack.enter_context(open(self.folder / f"{name.replace('/', '_')}.lock", "a+"))
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    @contextmanager
    def hold(self, count: int, *, give_up: Callable[[], bool]) -> Iterator[list[str] | None]:
        """`count` GPUs held until the block ends: waits until that many are free at once, or
        yields None once `give_up()` says so. Only one task waits at a time (it holds the
        line's lock), and it takes all its GPUs together or none: no two tasks each hold part
        of what the other waits for, and GPUs freed one by one go to the task first in line
        rather than to single-GPU tasks arriving after it."""
        if count > len(self.gpus):
            raise ValueError(f"{count} GPUs asked for; this worker has {len(self.gpus)}")
        with ExitStack() as line:
            while not self._lock("line", line):
                if give_up():
                    yield None
                    return
                time.sleep(POLL_S)
            while True:
                held, taken = ExitStack(), []
                for g in self.gpus:
                    if len(taken) < count and self._lock(f"gpu-{g}", held):
                        taken.append(g)
                if len(taken) == count:
                    break
                held.close()
                if give_up():
                    yield None
                    return
                time.sleep(POLL_S)
            line.close()  # the next in line may now wait
        with held:
            yield taken
