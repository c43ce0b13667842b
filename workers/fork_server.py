"""The warm start of training children: `python -m workers.fork_server`, one per worker process
(started by workers/child_process.py). It imports torch, Lightning and the training code once,
then forks a child per job that runs workers/child.py as `python -m workers.child` would. A job
then starts in milliseconds instead of a new interpreter's imports (5 to 10 s of CPU on a
2-core machine, for every job).

Its owner writes one JSON line per child to its stdin: {"id", "argv": [kind, spec], "cwd",
"log"}. It answers {"id", "pid"} once the child leads its own session (so a signal to its group
reaches it) in its job's folder, then {"pid", "rc"} when the child ends (rc as subprocess's returncode: -N for
signal N). Its stdin closed, it exits once its children have ended. It dies with its owner
(PR_SET_PDEATHSIG), and its children die with it.

`ps` shows a forked child as this server's command; its working folder is its job's attempt
folder (`ls -l /proc/PID/cwd`).

The server computes nothing (workers/child.py `preload` imports and decodes images only): a
fork copies the calling thread alone, and a child forked after torch's thread pool started
waits forever on that pool's locks. GPU and multi-process (DDP) children start cold instead
(CUDA must be started by the process that uses it; Lightning starts DDP ranks again from the
command line).
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import sys
import traceback

from service.core import protocol

_answers = None  # the pipe to the owner; stdout itself goes to stderr, so that nothing printed mixes in


def _send(message: dict) -> None:
    _answers.write(json.dumps(message) + "\n")
    _answers.flush()


def _run_child(request: dict, ready_w: int, server_fds: list[int], server: int) -> int:
    """In the fork: become what `python -m workers.child ARGV` started in `cwd` would be (with
    the server's environment, which is its owner's: the owner starts another server when its
    own changes)."""
    from workers import child

    protocol.die_with_parent()  # first: a server killed from here on takes this child with it
    if os.getppid() != server:  # it died before that
        os._exit(protocol.EXIT_ERROR)
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for fd in server_fds:
        os.close(fd)
    os.setsid()  # its own group, as subprocess's start_new_session gives the cold child
    log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.close(null)
    os.chdir(request["cwd"])
    os.write(ready_w, b"x")  # in place: its session, its log, its folder
    os.close(ready_w)
    sys.argv = [child.__file__, *request["argv"]]
    return child.main(request["argv"])


def _fork(request: dict, server_fds: list[int]) -> int:
    ready_r, ready_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    server = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(ready_r)
            code = _run_child(request, ready_w, server_fds, server)
        except SystemExit as e:  # as the interpreter would exit with it
            if e.code is None or isinstance(e.code, int):
                code = e.code or 0
            else:
                print(e.code, file=sys.stderr)
        except BaseException:  # noqa: BLE001 - the child's log gets the trace, the owner a code
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                # Not the interpreter's exit: atexit handlers and finalizers are the server's
                # too. What they would end (DataLoader workers, compile workers) is in the
                # child's group, which its supervisor kills whatever happens.
                os._exit(code)
    os.close(ready_w)
    os.read(ready_r, 1)  # the child leads its session (or died trying: its end is reported)
    os.close(ready_r)
    return pid


def _reap(children: set[int]) -> None:
    while children:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            return
        children.discard(pid)
        _send({"pid": pid, "rc": os.waitstatus_to_exitcode(status)})


def serve() -> None:
    global _answers
    protocol.die_with_parent()
    _answers = open(os.dup(1), "w", buffering=1)  # noqa: SIM115 - for the process's life
    os.dup2(2, 1)
    from workers.child import preload

    preload()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so that the wakeup fd is written
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    server_fds = [wake_r, wake_w, selector.fileno(), _answers.fileno()]
    _send({"ready": os.getpid()})
    pending, children, open_ = b"", set(), True
    while open_ or children:  # stdin closed: the children still running are waited for
        for key, _ in selector.select():
            if key.fd == wake_r:
                while True:
                    try:
                        if not os.read(wake_r, 512):
                            break
                    except BlockingIOError:
                        break
                continue
            data = os.read(0, 1 << 16)
            if not data:  # no more requests (a dead owner's server is killed: PR_SET_PDEATHSIG)
                selector.unregister(0)
                open_ = False
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                pid = _fork(request, server_fds)
                children.add(pid)
                _send({"id": request["id"], "pid": pid})
        _reap(children)


if __name__ == "__main__":
    serve()
