"""The training child as a process: in its own session (its spec written by
service/core/protocol.py), signalled as a group, stopped with nothing of it left, and the error
it left behind read back. A CPU child of one process is forked by this worker process's warm
fork server (workers/fork_server.py); a GPU or DDP one is a new `python -m workers.child`."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from service.core import protocol
from workers.spawner import popen

log = logging.getLogger(__name__)


def spawn(kind: str, spec: protocol.TrainSpec, folder: Path, gpus: list[str] | None = None):
    """The child, in its own session; given `gpus` (the slots its task holds), it sees only
    those. Returns a subprocess.Popen, or a ForkedChild that answers the same calls."""
    folder.mkdir(parents=True, exist_ok=True)
    protocol.write(folder / protocol.SPEC, spec)
    argv = [kind, str(folder / protocol.SPEC)]
    if gpus is None and spec.devices == 1:
        try:
            return fork_server().start(argv, cwd=folder, log=folder / protocol.LOG, env=dict(os.environ))
        except OSError:  # the server died since the last job: the next call starts another
            log.warning("the fork server of training children is gone; starting another")
            return fork_server().start(argv, cwd=folder, log=folder / protocol.LOG, env=dict(os.environ))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ",".join(gpus)} if gpus else None
    with open(folder / protocol.LOG, "ab") as log_file:  # the child keeps its own copy; ours closes here
        return subprocess.Popen([sys.executable, "-m", "workers.child", *argv],
                                stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True, cwd=folder,
                                env=env)


class ForkedChild:
    """A child of the fork server, with the part of subprocess.Popen's interface the
    supervisor uses: pid, poll(), wait(timeout), returncode."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None
        self._ended = threading.Event()

    def _end(self, rc: int) -> None:
        if self.returncode is None:
            self.returncode = rc
        self._ended.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(["workers.child", str(self.pid)], timeout)
        return self.returncode


class _ForkServer:
    """The owner's end of workers/fork_server.py: one request at a time; a reader thread hands
    each child its exit code. If the server dies, its children die with it (PR_SET_PDEATHSIG):
    they are reported killed, and the next start begins a new server."""

    def __init__(self, env: dict[str, str]):
        self.env, self.owner = env, os.getpid()
        self._ready = False
        self.proc = popen([sys.executable, "-m", "workers.fork_server"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, env=env, start_new_session=True)
        self._lock = threading.Lock()  # one request, then its answer
        self._answers: list[dict] = []
        self._answered = threading.Condition()
        self._children: dict[int, ForkedChild] = {}
        self._early: dict[int, int] = {}  # exit codes read before their child was registered
        self.alive = True
        threading.Thread(target=self._read, name="fork-server-reader", daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            message = json.loads(line)
            if "rc" in message:
                with self._answered:
                    child = self._children.pop(message["pid"], None)
                    if child is None:
                        self._early[message["pid"]] = message["rc"]
                if child is not None:
                    child._end(message["rc"])
            else:
                with self._answered:
                    self._answers.append(message)
                    self._answered.notify_all()
        rc = self.proc.wait()
        log.warning("the fork server of training children exited with code %s", rc)
        with self._answered:
            self.alive = False
            children, self._children = list(self._children.values()), {}
            self._answered.notify_all()
        for child in children:  # killed with their server; make sure of it
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            child._end(-signal.SIGKILL)

    def _answer(self) -> dict:
        with self._answered:
            while not self._answers:
                if not self.alive:
                    raise OSError("the fork server of training children exited")
                self._answered.wait()
            return self._answers.pop(0)

    def ready(self) -> None:
        """Waits until the server has imported torch and the training code."""
        with self._lock:
            self._ready_locked()

    def _ready_locked(self) -> None:
        if not self._ready:
            self._answer()  # {"ready"}: always its first answer
            self._ready = True

    def start(self, argv: list[str], *, cwd: Path, log: Path, env: dict[str, str]) -> ForkedChild:
        with self._lock:
            self._ready_locked()
            request = {"argv": argv, "cwd": str(cwd), "log": str(log), "env": env}
            try:
                self.proc.stdin.write((json.dumps(request) + "\n").encode())
                self.proc.stdin.flush()
            except OSError as e:
                raise OSError(f"the fork server of training children is gone: {e}") from e
            pid = self._answer()["pid"]
            child = ForkedChild(pid)
            with self._answered:
                early = self._early.pop(pid, None)
                if early is None and self.alive:
                    self._children[pid] = child
            if early is not None:
                child._end(early)
            elif not self.alive:
                child._end(-signal.SIGKILL)
            return child


_server: _ForkServer | None = None
_server_lock = threading.Lock()


def fork_server() -> _ForkServer:
    """This process's fork server, started on first use, and again if it died or if the
    environment changed (the server imported its modules under the environment it began with)."""
    global _server
    env = dict(os.environ)
    with _server_lock:
        if _server is None or not _server.alive or _server.env != env or _server.owner != os.getpid():
            if _server is not None and _server.alive and _server.owner == os.getpid():
                _server.proc.stdin.close()  # it exits once its running children have ended
            _server = _ForkServer(env)
        return _server


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
