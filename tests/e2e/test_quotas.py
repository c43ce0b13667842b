"""Quotas under a burst, against the real API under uvicorn and S3 (moto's server over HTTP):
exact whatever the concurrency, self-healing after a lost release, and the operator's repair
command. No worker runs: the jobs stay queued, which is what the active-jobs quota counts."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from service.core import usage
from service.core.stores import Stores
from service.core.auth import KeyStore
from service.core.records import now
from service.core.storage import open_store
from tests.cli_process import run_cli
from tests.e2e.conftest import ROOT, running_api, settings_of

pytestmark = pytest.mark.slow
BURST = 24
JOB = {"style_id": "builtin:ihc", "steps": 2, "size": 32, "batch": 1}


def burst(client, n: int) -> list[int]:
    """n submissions at once (a barrier releases them together): their status codes."""
    start = threading.Barrier(n)

    def submit(_) -> int:
        start.wait()
        return client.post("/v1/jobs", json=JOB).status_code

    with ThreadPoolExecutor(n) as pool:
        return sorted(pool.map(submit, range(n)))


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return run_cli(args, cwd=ROOT, env={**os.environ, **env}, timeout=120)


def test_a_burst_makes_exactly_the_quota_and_repair_rebuilds_the_count(service_env, redis_url, tmp_path):
    env = {**service_env, "CHECKERLESS_QUOTA_ACTIVE_JOBS": "3"}
    with running_api(env, tmp_path / "api.log") as c:
        store = open_store(settings_of(env))
        owner = KeyStore(store).lookup(c.headers["X-API-Key"]).owner
        codes = burst(c, BURST)
        assert codes == [201] * 3 + [429] * (BURST - 3), (codes, usage.read(store, owner), (tmp_path / "api.log").read_text()[-3000:])
        jobs = c.get("/v1/jobs").json()
        assert len(jobs) == 3
        # One ends: room for exactly one more, however many ask at once.
        assert c.post(f"/v1/jobs/{jobs[0]['id']}/cancel").status_code == 202
        assert burst(c, 8) == [201] + [429] * 7

        # A release lost in a crash (the job ended, its id still counted): the next submission
        # that finds the quota full reads those records and drops the ended one.
        running = [j["id"] for j in c.get("/v1/jobs").json() if j["state"] == "queued"]
        assert c.post(f"/v1/jobs/{running[0]}/cancel").status_code == 202
        record = usage.read(store, owner)
        record.active[running[0]] = record.active.get(running[0]) or now()  # as if its release were lost
        store.put_bytes(f"owners/{owner}/usage.json", record.model_dump_json().encode())
        assert burst(c, 4) == [201] + [429] * 3

        # The operator's repair: the record rebuilt from the job records.
        broken = usage.read(store, owner)
        broken.active, broken.minutes, broken.stored_bytes = {"f" * 32: now()}, {}, 1
        store.put_bytes(f"owners/{owner}/usage.json", broken.model_dump_json().encode())
        p = cli(env, "usage", "repair", owner, "--json")
        assert p.returncode == 0, p.stderr
        [row] = json.loads(p.stdout)
        unfinished = sorted(j["id"] for j in c.get("/v1/jobs").json() if j["state"] == "queued")
        assert sorted(row["active"]) == unfinished and len(unfinished) == 3
        assert row["window_pixels"] == len(c.get("/v1/jobs").json()) * 2 * 32 * 32
        assert row["stored_bytes"] == Stores(store).storage_used(owner) > 1  # measured again
        p = cli(env, "usage", "repair", "0" * 32)
        assert p.returncode != 0 and "no owner" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    redis.Redis.from_url(redis_url).delete("train")  # the messages no worker took
