"""The training child as a process: started in its own session (`python -m workers.child`,
its spec written by service/core/protocol.py), signalled as a group, stopped with nothing of
it left, and the error it left behind read back."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from service.core import protocol

log = logging.getLogger(__name__)


def spawn(kind: str, spec: protocol.TrainSpec, folder: Path, gpus: list[str] | None = None) -> subprocess.Popen:
    """The child, in its own session; given `gpus` (the slots its task holds), it sees only those."""
    folder.mkdir(parents=True, exist_ok=True)
    protocol.write(folder / protocol.SPEC, spec)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ",".join(gpus)} if gpus else None
    with open(folder / protocol.LOG, "ab") as log_file:  # the child keeps its own copy; ours closes here
        return subprocess.Popen([sys.executable, "-m", "workers.child", kind, str(folder / protocol.SPEC)],
                                stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True, cwd=folder,
                                env=env)


def signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def stop_now(proc: subprocess.Popen) -> None:
    """SIGKILL to the child's whole group, and reap it: nothing of the job outlives this."""
    signal_group(proc, signal.SIGKILL)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        log.error("child %d did not die after SIGKILL", proc.pid)


def error_text(folder: Path, rc: int) -> str:
    text = (folder / protocol.ERROR).read_text().strip() if (folder / protocol.ERROR).exists() else ""
    if text:
        return text
    if rc < 0:
        return f"the training process was killed by signal {-rc} (out of memory?)"
    return f"the training process exited with code {rc}; see the worker log"
