"""The warm start of training children (workers/fork_server.py through
workers/child_process.py `spawn`): children forked by one server that imported torch once, each
in its own session and its job's folder, their exit codes and signals reported,
and a server that dies taking its children with it and replaced at the next start."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from service.core import protocol
from tests.e2e.conftest import PLAIN_NET
from workers.child_process import ForkedChild, fork_server, spawn, stop_now


def _spec(tmp_path, style, steps=2):
    config = {"size": 32, "batch": 1, "steps": steps, "precision": "32", **PLAIN_NET}
    return protocol.TrainSpec(config=config, style=style, max_pixels=10**7, device="cpu", probe_size=32,
                              preview_size=32)


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _alive(pid: int) -> bool:
    """Running: a zombie waiting for whoever inherited it is not."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _cmdline(pid: int) -> str:
    """The process's command line. Read once, it can be empty just after Popen returns: Popen
    returns when exec closes its pipe, before the kernel has set up the new program's
    arguments (twice in CI on an Intel Xeon)."""
    deadline = time.monotonic() + 10
    while True:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            line = f.read().replace(b"\0", b" ").decode()
        if line or time.monotonic() > deadline:
            return line
        time.sleep(0.01)


def test_children_are_forked_warm_report_their_ends_and_die_with_their_server(tmp_path):
    bad = tmp_path / "not-an-image.png"
    bad.write_text("text")
    first = spawn("train", _spec(tmp_path, str(bad)), tmp_path / "a")
    server = fork_server().proc.pid
    assert "workers.fork_server" in _cmdline(server)
    assert first.wait(timeout=60) == protocol.EXIT_USER_ERROR  # the child's own exit code, read back
    assert "not an image" in (tmp_path / "a" / protocol.ERROR).read_text()

    run = spawn("train", _spec(tmp_path, "ihc", steps=10_000), tmp_path / "b")
    assert _parent(run.pid) == server and os.getsid(run.pid) == run.pid  # forked warm, in its own session
    assert os.readlink(f"/proc/{run.pid}/cwd") == str(tmp_path / "b")  # where `ps` readers find its job
    deadline = time.monotonic() + 180  # its first step, on a CI machine as loaded as it gets
    while not (tmp_path / "b" / protocol.PROGRESS).exists():  # it trains
        assert run.poll() is None and time.monotonic() < deadline, (tmp_path / "b" / protocol.LOG).read_text()[-2000:]
        time.sleep(0.2)
    stop_now(run)  # SIGKILL to its group, as the supervisor does
    assert run.returncode == -signal.SIGKILL

    doomed = spawn("train", _spec(tmp_path, "ihc", steps=10_000), tmp_path / "c")
    os.kill(server, signal.SIGKILL)
    assert doomed.wait(timeout=30) == -signal.SIGKILL  # reported killed with its server...
    deadline = time.monotonic() + 10
    while _alive(doomed.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(doomed.pid)  # ...and gone (PR_SET_PDEATHSIG)
    again = spawn("train", _spec(tmp_path, str(bad)), tmp_path / "d")  # a new server
    assert fork_server().proc.pid != server and isinstance(again, ForkedChild)
    assert again.wait(timeout=120) == protocol.EXIT_USER_ERROR


def test_a_server_that_dies_before_it_is_ready_leaves_the_job_a_cold_child(tmp_path, monkeypatch):
    monkeypatch.setenv("CHECKERLESS_TEST_FRESH_SERVER", str(tmp_path))  # a new environment: a new server
    server = fork_server()
    # The pool's thread lives until the cold child is checked: a child dies with the thread that
    # started it (PR_SET_PDEATHSIG), and a worker's task thread outlives its child.
    with ThreadPoolExecutor(1) as pool:
        job = pool.submit(spawn, "train", _spec(tmp_path, "ihc", steps=10_000), tmp_path / "a")
        deadline = time.monotonic() + 30
        while not server._lock.locked():  # the job waits for the server's imports...
            assert time.monotonic() < deadline and not job.done(), job.done() and job.result()
            time.sleep(0.01)
        assert not server._ready
        server.proc.kill()  # ...and the server dies, as the OOM killer might kill it while it imports
        cold = job.result(timeout=60)
        assert isinstance(cold, subprocess.Popen) and _parent(cold.pid) == os.getpid()
        assert "-m workers.child train" in _cmdline(cold.pid)
        assert cold.poll() is None  # it trains
        stop_now(cold)
        assert cold.returncode == -signal.SIGKILL
    warm = spawn("train", _spec(tmp_path, "ihc"), tmp_path / "b")  # the next job: a new server
    assert isinstance(warm, ForkedChild) and warm.wait(timeout=120) == protocol.EXIT_OK
