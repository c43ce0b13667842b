"""A redis-server of a process's own, on a free loopback port, with its append-only file in a
folder (as docker-compose.yml runs Redis): `checkerless soak` restarts it under load, and the
broker tests restart it under a job."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """redis-server on `port`, its append-only file in `folder`."""

    def __init__(self, folder: Path, port: int | None = None):
        self.folder, self.port, self.proc = Path(folder), port or free_port(), None
        self.folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *, timeout_s: float = 30) -> None:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--dir", str(self.folder), "--appendonly", "yes", "--appendfsync", "always",
                                      "--save", ""], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        client, deadline = redis.Redis(port=self.port), time.monotonic() + timeout_s
        while True:
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        """A clean shutdown: SIGTERM, as a container stop sends it (the AOF is already synced)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
