"""Real parts for end-to-end tests: the machine's Redis (a database of our own), moto's S3
server over HTTP, a Celery worker process and the API under uvicorn on a free port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis

from service.cli.own_redis import free_port
from workers.child_process import pid_alive

# Ours alone: flushed before and after, the shared server's other databases untouched. Test
# sessions run side by side (several people on one machine) each claim one of these, so none
# takes another's messages or flushes them away.
# One per pytest-xdist worker (the fixture, redis_url, is tests/conftest.py's, so a worker
# running both tests/client and tests/e2e holds one); the rest for sessions side by side.
REDIS_DBS = (15, 12, 11, 10, 13, 6, 5)  # not tests/conftest.py's SERVICE_REDIS_DBS
CLAIM = "checkerless-e2e-session"
ROOT = Path(__file__).resolve().parents[2]
# What every service the e2e tests start does with its tiny jobs (tests/conftest.py's probe size
# is 32; e2e jobs probe at 48 so a 32 px job's scores still tell deconv from the rest). No
# ONNX/TorchScript files for finished jobs (an ONNX export costs a job 10-20 s of CPU): the
# tests of exports ask for them (test_service.py, tests/client, test_live.py).
TINY_JOBS = {"CHECKERLESS_PROBE_SIZE": "48", "CHECKERLESS_PREVIEW_SIZE": "64", "CHECKERLESS_EXPORT_FORMATS": "[]"}
# The network of the tests whose subject is the service around training (leases, faults,
# restarts, workers): the sweep's old defaults, whose step at 32 px costs about a third of
# today's (no stability term's extra passes, no filtered ReLUs). What the defaults' network does
# is tested where it is the subject (tests/models, the demo and the pages).
PLAIN_NET = {"decoder": "resize-nearest", "downsample": "stride-conv", "filtered_relu": False, "stability_weight": 0}


def checkpoint_stored(api: httpx.Client, job_id: str) -> bool:
    """Whether the job's record names a stored checkpoint (one its next attempt resumes from):
    a test that kills a job to see it resume waits for this, not for a step count (checkpoints
    are uploaded off the step, so steps run ahead of them). Asked as a presigned URL: nothing
    downloaded."""
    return api.get(f"/v1/jobs/{job_id}/checkpoint", params={"presign": "true"}).status_code == 200


def wait_for(predicate, *, timeout: float, what: str, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _take_over(client: redis.Redis, holder: bytes) -> bool:
    """The claim of a session whose process is gone (killed before its teardown could release
    it), taken if nobody else took it first."""
    with client.pipeline() as pipe:
        try:
            pipe.watch(CLAIM)
            if pipe.get(CLAIM) != holder:
                return False
            pipe.multi()
            pipe.set(CLAIM, os.getpid(), ex=7200)
            pipe.execute()
            return True
        except redis.WatchError:
            return False


def claim_redis_db() -> redis.Redis:
    """One of REDIS_DBS that no other running session holds (a claim lasts at most 2 h; one whose
    process is gone is taken over: a killed run's claim made the next run wait 6 minutes)."""
    def claimed() -> redis.Redis | None:
        for db in REDIS_DBS:
            client = redis.Redis(host="127.0.0.1", port=6379, db=db)
            if client.set(CLAIM, os.getpid(), nx=True, ex=7200):
                return client
            holder = client.get(CLAIM)
            if holder is not None and holder.isdigit() and not pid_alive(int(holder)) and _take_over(client, holder):
                return client
        return None

    return wait_for(claimed, timeout=900, what=f"a free Redis database of {REDIS_DBS}", interval=2)


@pytest.fixture(scope="module")
def service_env(redis_url, s3_endpoint, tmp_path_factory) -> dict[str, str]:
    data = tmp_path_factory.mktemp("data")
    return {
        "CHECKERLESS_BROKER_URL": redis_url,
        "CHECKERLESS_STORE": "s3",
        "CHECKERLESS_S3_ENDPOINT_URL": s3_endpoint,
        "CHECKERLESS_S3_PUBLIC_URL": s3_endpoint.replace("127.0.0.1", "localhost"),
        "CHECKERLESS_S3_BUCKET": f"e2e-{uuid.uuid4().hex[:12]}",
        "CHECKERLESS_S3_ACCESS_KEY": "test",
        "CHECKERLESS_S3_SECRET_KEY": "test",
        "CHECKERLESS_DATA_DIR": str(data),
        "CHECKERLESS_DEVICE": "cpu",
        "CHECKERLESS_HEARTBEAT_S": "0.5",
        "CHECKERLESS_STALE_AFTER_S": "4",
        "CHECKERLESS_CANCEL_GRACE_S": "5",
        "CHECKERLESS_MAX_PIXELS": "250000",
        "CHECKERLESS_MAX_UPLOAD_BYTES": str(2 * 1024 * 1024),
        "CHECKERLESS_WEBHOOK_ALLOW_PRIVATE": "true",  # the tests' receivers listen on loopback
        **TINY_JOBS,
        "OMP_NUM_THREADS": "1",
    }


class Worker:
    """A `checkerless worker` process (its own process group, so a test can kill it whole)."""

    def __init__(self, env: dict[str, str], log: Path, *, queues: str = "train,stylize",
                 concurrency: int | None = 1):  # None: the worker's default (one per GPU)
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker", "--queues", queues,
             *(["--concurrency", str(concurrency)] if concurrency else []),
             "--hostname", f"e2e-{uuid.uuid4().hex[:6]}@%h"],
            env={**os.environ, **env}, cwd=ROOT, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
            start_new_session=True)
        wait_for(lambda: b" ready." in log.read_bytes() or self.proc.poll() is not None, timeout=90, what="the worker")
        assert self.proc.poll() is None, log.read_text()[-3000:]

    def terminate(self) -> None:
        """SIGTERM to the worker's main process alone, as `docker compose stop` sends it."""
        self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="module")
def start_worker(service_env, tmp_path_factory):
    started: list[Worker] = []
    logs = tmp_path_factory.mktemp("logs")

    def start(*, queues: str = "train,stylize", concurrency: int | None = 1, **env: str) -> Worker:
        """A worker; keyword arguments in capitals override its environment (CHECKERLESS_...)."""
        w = Worker({**service_env, **env}, logs / f"worker-{len(started)}.log", queues=queues, concurrency=concurrency)
        started.append(w)
        return w

    def stop_all() -> None:
        for w in started:
            w.stop()

    start.stop_all = stop_all
    yield start
    for w in started:
        w.stop()


@contextmanager
def running_api(env: dict[str, str], log: Path) -> Iterator[httpx.Client]:
    """The API under uvicorn on a free port with these settings, and a client with a new key."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "service.api.main:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        env={**os.environ, **env}, cwd=ROOT, stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, headers={"X-API-Key": api_key(env)})

    def healthy() -> bool:
        try:
            return client.get("/v1/health").status_code == 200
        except httpx.HTTPError:
            assert proc.poll() is None, log.read_text()
            return False

    try:
        wait_for(healthy, timeout=60, what="the API")
        yield client
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def api(service_env, tmp_path_factory) -> httpx.Client:
    with running_api(service_env, tmp_path_factory.mktemp("api") / "api.log") as client:
        yield client


@contextmanager
def bare_api(data_dir: Path, *, timeout: float) -> Iterator[tuple[httpx.Client, int]]:
    """The API alone under uvicorn on the embedded defaults (a local store in `data_dir`), for
    tests that measure its process: (a client with a key, the API's pid)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKERLESS_")}
    env["CHECKERLESS_DATA_DIR"] = str(data_dir)
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "service.api.main:create_app", "--factory",
                             "--port", str(port), "--log-level", "warning"], cwd=ROOT, env=env)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=timeout,
                          headers={"X-API-Key": api_key({"CHECKERLESS_DATA_DIR": str(data_dir)})})

    def up() -> bool:
        try:
            return client.get("/v1/health").status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, timeout=60, what="the API")
        yield client, proc.pid
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=30)


def settings_of(env: dict[str, str]):
    """The service's Settings for an environment such as service_env, as its processes read it:
    a list or dict setting is JSON there (pydantic-settings decodes it from an environment
    variable, not from a keyword argument)."""
    from service.core.settings import Settings

    decoded = lambda v: json.loads(v) if v.startswith(("[", "{")) else v  # noqa: E731
    return Settings(**{k.removeprefix("CHECKERLESS_").lower(): decoded(v) for k, v in env.items()
                       if k.startswith("CHECKERLESS_")})


def api_key(env: dict[str, str], **key) -> str:
    """A new API key in the store these settings name (a new owner's unless `owner` is given)."""
    from service.core.auth import KeyStore
    from service.core.storage import open_store

    return KeyStore(open_store(settings_of(env))).create(name="e2e", **key)[1]


def child_processes(job_id: str) -> list[int]:
    """Pids of the training children working for this job: started cold, found by the spec path
    on their command line; forked warm by workers/fork_server.py, by their working folder (the
    job's attempt folder)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                if (("workers.child" in cmd and job_id in cmd)
                        or ("workers.fork_server" in cmd and job_id in os.readlink(d / "cwd"))):
                    pids.append(int(d.name))
            except OSError:
                continue
    return pids
