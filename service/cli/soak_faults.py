"""What `checkerless soak` does to the embedded stack it runs, and how it finds the processes
to do it to: from /proc, the workers `serve` started (service/cli/embedded.py) and the training
children working for jobs (started cold by workers/spawner.py or forked warm by
workers/fork_server.py, each in its job's attempt folder)."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from service.cli.own_redis import RedisServer
from service.cli.store_proxy import StoreProxy

# A training child's attempt folder, in its working folder or on its command line:
# <work_dir>/<job id>/attempt-<n> (workers/train_task.py).
ATTEMPT_FOLDER = re.compile(r"/([0-9a-f]{32})/attempt-\d+")


def _processes() -> dict[int, tuple[int, str, str]]:
    """Every live process: pid -> (parent pid, command line, working folder)."""
    found = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":  # a zombie: dead, not yet reaped
                continue
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            found[int(d.name)] = (int(stat.rsplit(")", 1)[1].split()[1]), cmd, os.readlink(d / "cwd"))
        except (OSError, IndexError, ValueError):  # gone meanwhile, or not ours to read
            continue
    return found


def training_children() -> dict[int, str]:
    """Training processes alive now: pid -> the job it trains. A process that a training child
    itself forked (a DataLoader worker) carries its parent's folder: only the topmost counts."""
    procs = _processes()
    children = {}
    for pid, (_, cmd, cwd) in procs.items():
        if "workers.child" in cmd or "workers.fork_server" in cmd:
            where = ATTEMPT_FOLDER.search(cwd) or ("workers.child" in cmd and ATTEMPT_FOLDER.search(cmd))
            if where:
                children[pid] = where.group(1)
    return {pid: job for pid, job in children.items() if procs[pid][0] not in children}


def workers(serve_pid: int) -> dict[str, int]:
    """The worker processes `serve` runs: queue -> main process pid."""
    found = {}
    for pid, (parent, cmd, _) in _processes().items():
        if parent == serve_pid and " worker --queues " in cmd:
            found[cmd.split(" worker --queues ", 1)[1].split()[0]] = pid
    return found


@dataclass
class Faults:
    """Faults at random (seeded) moments, one every `every_s` on average, into the stack whose
    `serve` process is `serve_pid` (and into `redis` and `store`, where the stack runs a Redis and
    an S3 of its own, the S3 reached through a proxy that can refuse every connection)."""

    serve_pid: int
    rng: random.Random
    redis: RedisServer | None = None
    store: StoreProxy | None = None
    done: list[tuple[float, str, str]] = field(default_factory=list)  # (seconds in, fault, what it hit)

    def kinds(self) -> dict[str, Callable[[], str | None]]:
        kinds = {"kill a training child (SIGKILL)": self.kill_child,
                 "kill the train worker whole (SIGKILL)": lambda: self.kill_worker("train"),
                 "kill the stylise worker whole (SIGKILL)": lambda: self.kill_worker("stylize"),
                 "stop the train worker (SIGTERM)": self.stop_train_worker}
        if self.redis is not None:
            kinds["restart Redis"] = self.restart_redis
            kinds["restart Redis with its data lost"] = lambda: self.restart_redis(lose_data=True)
        if self.store is not None:
            kinds["stop the store for a while"] = self.stop_store
        return kinds

    def inject(self, elapsed_s: float) -> None:
        """One fault; one that finds nothing to hit (no training child now) gives way to another."""
        kinds = self.kinds()
        for name in self.rng.sample(sorted(kinds), len(kinds)):
            hit = kinds[name]()
            if hit is not None:
                self.done.append((round(elapsed_s, 1), name, hit))
                return

    def kill_child(self) -> str | None:
        children = training_children()
        if not children:
            return None
        pid = self.rng.choice(sorted(children))
        _signal(pid, signal.SIGKILL, group=False)
        return f"pid {pid}, job {children[pid]}"

    def kill_worker(self, queue: str) -> str | None:
        pid = workers(self.serve_pid).get(queue)
        if pid is None:  # being restarted by serve
            return None
        _signal(pid, signal.SIGKILL, group=True)  # its pool and its children with it
        return f"pid {pid}"

    def stop_train_worker(self) -> str | None:
        pid = workers(self.serve_pid).get("train")
        if pid is None:
            return None
        _signal(pid, signal.SIGTERM, group=False)  # its main process only, as `docker compose stop` sends it
        return f"pid {pid}"

    def restart_redis(self, *, lose_data: bool = False) -> str:
        """A clean restart (its append-only file replayed), or one that starts empty: every
        message queued or held is gone, and the sweepers must send the work again."""
        self.redis.stop()
        if lose_data:
            shutil.rmtree(self.redis.folder)
            self.redis.folder.mkdir()
        time.sleep(self.rng.uniform(0.5, 3.0))
        self.redis.start()
        return f"port {self.redis.port}"


    def stop_store(self) -> str:
        """The store refuses every connection (the API's and the workers'), for 1 to 8 s: shorter
        than a lease, the training children only pause; longer than the stale timeout, their
        attempts end and the jobs are sent again."""
        seconds = self.rng.uniform(1.0, 8.0)
        self.store.down()
        time.sleep(seconds)
        self.store.up()
        return f"{seconds:.1f} s"


def _signal(pid: int, sig: int, *, group: bool) -> None:
    try:
        os.killpg(pid, sig) if group else os.kill(pid, sig)
    except ProcessLookupError:  # it ended meanwhile
        pass
