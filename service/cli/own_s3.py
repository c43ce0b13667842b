"""moto's S3 server in a process of its own, on a free loopback port: the store of `checkerless
soak` (which stops it for a while through a StoreProxy, service/cli/store_proxy.py) and of the
tests. moto comes with the dev extra (pyproject.toml); where it is missing, `available()` says so.

A process of its own, not a thread of its caller's: the caller's own threads (a soak's process
sampling, a test's polling) would otherwise share one interpreter lock with every S3 request of
every worker, and delay their heartbeats.

`python -m service.cli.own_s3` runs the server (and prints its port); `S3Server` starts and stops that process."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading

from service.core.protocol import die_with_parent


def available() -> bool:
    return importlib.util.find_spec("moto") is not None


def atomic_conditional_puts() -> None:
    """S3 applies a conditional PutObject (If-Match / If-None-Match) atomically; moto checks the
    condition and then writes, with no lock between (moto/s3/responses.py, put_object), so two
    racing writers can both pass. Our records rely on S3's semantics: give moto's server them."""
    from moto.s3.responses import S3Response

    if getattr(S3Response.put_object, "atomic", False):
        return
    lock, put = threading.Lock(), S3Response.put_object

    def put_object(self):
        with lock:
            return put(self)

    put_object.atomic = True
    S3Response.put_object = put_object


class S3Server:
    """moto's server on a port it binds itself (no race for a free one), in a process that dies
    with its starter (PR_SET_PDEATHSIG)."""

    def __init__(self):
        self.port, self.proc = 0, None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout_s: float = 60) -> S3Server:
        self.proc = subprocess.Popen([sys.executable, "-m", "service.cli.own_s3"], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True,
                                     preexec_fn=lambda: die_with_parent(signal.SIGKILL))
        # Its first line is the port it listens on, once it does.
        ready = threading.Timer(timeout_s, self.proc.kill)
        ready.start()
        line = self.proc.stdout.readline().strip()
        ready.cancel()
        if not line.isdigit():
            self.stop()
            raise RuntimeError("moto's S3 server did not start")
        self.port = int(line)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def main() -> None:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    atomic_conditional_puts()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # nothing more to say: no pipe left to fill
    signal.sigwait({signal.SIGTERM, signal.SIGINT})


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})  # for sigwait, in every thread
    main()
