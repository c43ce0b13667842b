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
import time
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
            return fork_server().start(argv, cwd=folder, log=folder / protocol.LOG)
        except OSError as e:  # the server could not start it (ForkServerError): the job still runs, started cold
            log.warning("%s; starting the training child cold", e)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ",".join(gpus)} if gpus else None
    with open(folder / protocol.LOG, "ab") as log_file:  # the child keeps its own copy; ours closes here
        return subprocess.Popen([sys.executable, "-m", "workers.child", *argv],
                                stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True, cwd=folder,
                                env=env)


class ForkServerError(OSError):
    """The fork server could not start a child: it died, hung or never got ready."""


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


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class _ForkServer:
    """The owner's end of workers/fork_server.py: one request at a time, matched to its answer
    by id; a reader thread hands each child its exit code. A server that dies, or does not
    answer in time, is killed, and its children with it (PR_SET_PDEATHSIG): they are reported
    killed, and the next start begins a new server."""

    READY_S = 300  # its imports: seconds on an idle machine, a minute or more on a loaded one
    ANSWER_S = 60  # a fork

    def __init__(self, env: dict[str, str]):
        self.env, self.owner = env, os.getpid()
        self.proc = popen([sys.executable, "-m", "workers.fork_server"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, env=env, start_new_session=True)
        self._lock = threading.Lock()  # one request, then its answer
        self._answered = threading.Condition()  # guards the state below
        self._answers: list[dict] = []
        self._children: dict[int, ForkedChild] = {}
        self._early: dict[int, int] = {}  # exit codes read before their child was registered
        self._ready = False
        self._next_id = 0
        self.alive = True
        threading.Thread(target=self._read, name="fork-server-reader", daemon=True).start()

    def _read(self) -> None:
        try:
            for line in self.proc.stdout:
                message = json.loads(line)
                with self._answered:
                    if "rc" in message:
                        child = self._children.pop(message["pid"], None)
                        if child is None:
                            self._early[message["pid"]] = message["rc"]
                    else:
                        child = None
                        self._answers.append(message)
                        self._answered.notify_all()
                if child is not None:
                    child._end(message["rc"])
        except Exception:  # noqa: BLE001 - whatever it was, the server is no longer understood
            log.exception("the fork server of training children sent what cannot be read")
        finally:
            self._dead()

    def _dead(self) -> None:
        """The server is gone or given up: killed, and every child it had reported killed."""
        self.proc.kill()
        rc = self.proc.wait()
        with self._answered:
            was_alive, self.alive = self.alive, False
            children, self._children = list(self._children.values()), {}
            self._answered.notify_all()
        if was_alive:
            log.warning("the fork server of training children exited with code %s", rc)
        for child in children:  # they died with it (PR_SET_PDEATHSIG); make sure of it
            _kill_group(child.pid)
            child._end(-signal.SIGKILL)

    def _answer(self, want: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        with self._answered:
            while True:
                for i, message in enumerate(self._answers):
                    if want in message:
                        return self._answers.pop(i)
                left = deadline - time.monotonic()
                if not self.alive or left <= 0:
                    break
                self._answered.wait(left)
        self._dead()
        raise ForkServerError(f"the fork server of training children {'exited' if not self.alive else 'did not answer'}")

    def ready(self) -> None:
        """Waits until the server has imported torch and the training code."""
        with self._lock:
            self._wait_ready()

    def _wait_ready(self) -> None:
        if not self._ready:
            self._answer("ready", self.READY_S)
            self._ready = True

    def start(self, argv: list[str], *, cwd: Path, log: Path) -> ForkedChild:
        with self._lock:
            self._wait_ready()
            self._next_id += 1
            request = {"id": self._next_id, "argv": argv, "cwd": str(cwd), "log": str(log)}
            try:
                self.proc.stdin.write((json.dumps(request) + "\n").encode())
                self.proc.stdin.flush()
            except (OSError, ValueError) as e:  # a broken pipe, or closed for another server
                self._dead()
                raise ForkServerError(f"the fork server of training children is gone ({e})") from e
            while True:
                answer = self._answer("pid", self.ANSWER_S)
                if answer["id"] == request["id"]:
                    break
                _kill_group(answer["pid"])  # an earlier request's, whose caller gave up: no one supervises it
            pid = answer["pid"]
            child = ForkedChild(pid)
            with self._answered:
                early = self._early.pop(pid, None)
                if early is None and self.alive:
                    self._children[pid] = child
            if early is not None:
                child._end(early)
            elif not self.alive:  # the server died in between: so did the child
                _kill_group(pid)
                child._end(-signal.SIGKILL)
            return child


_server: _ForkServer | None = None
_server_lock = threading.Lock()


def fork_server() -> _ForkServer:
    """This process's fork server, started on first use, and again if it died or if the
    environment changed (the server imported its modules under the environment it began with,
    and its children have that environment)."""
    global _server
    env = dict(os.environ)
    with _server_lock:
        if _server is None or not _server.alive or _server.env != env or _server.owner != os.getpid():
            if _server is not None and _server.alive and _server.owner == os.getpid():
                _server.proc.stdin.close()  # it exits once its running children have ended
            _server = _ForkServer(env)
        return _server


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (another user's counts: it is not gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
