"""The broker restarting under a running job, against a Redis of this test's own (a
redis-server on a free port, appendonly as docker-compose.yml runs it), the real API, a real
worker and S3 (moto's server): restarted with its data, no job and no webhook event is lost;
restarted without it, the sweeper sends every unfinished job again."""

from __future__ import annotations

import json
import shutil

import pytest
import redis

from service.cli.own_redis import RedisServer
from service.cli.webhook_receiver import Receiver
from tests.e2e.conftest import PLAIN_NET, running_api, wait_for

pytestmark = pytest.mark.slow
JOB = {"style_id": "builtin:ihc", "size": 32, "batch": 1, **PLAIN_NET}


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def test_jobs_and_events_survive_a_broker_restart_and_a_broker_that_lost_its_data(service_env, own_redis,
                                                                                      start_worker, tmp_path):
    """About a minute on a 2-core CPU: a Redis of its own is restarted mid-job, then replaced by
    one that lost its data, and the job and its events are followed through both."""
    env = {**service_env, "CHECKERLESS_BROKER_URL": f"redis://127.0.0.1:{own_redis.port}/0",
           "CHECKERLESS_RESEND_QUEUED_AFTER_S": "2"}
    receiver = Receiver()
    with running_api(env, tmp_path / "api.log") as api:
        try:
            worker = start_worker(**{k: v for k, v in env.items() if k.startswith("CHECKERLESS_")})

            def submit(**settings) -> str:
                r = api.post("/v1/jobs", json={**JOB, **settings})
                assert r.status_code == 201, r.text
                return r.json()["id"]

            def end_of(job_id: str) -> dict:
                return wait_for(lambda: (j := api.get(f"/v1/jobs/{job_id}").json())["state"] in
                                ("succeeded", "failed", "cancelled") and j, timeout=300, what=f"job {job_id} to end")

            # Restarted with its data, mid-job: the job finishes, and its receiver hears each state.
            running = submit(steps=24, webhook_url=receiver.url)
            wait_for(lambda: api.get(f"/v1/jobs/{running}").json()["step"] >= 2, timeout=180, what="training")
            own_redis.stop()
            own_redis.start()
            job = end_of(running)
            assert job["state"] == "succeeded"

            def states() -> list[str]:  # each event once (by its id), in the order they happened
                events = {e["id"]: e for e in (json.loads(r["body"]) for r in receiver.received)}
                return [e["state"] for e in sorted(events.values(), key=lambda e: e["created_at"])]

            wait_for(lambda: states()[-1:] == ["succeeded"], timeout=60, what="the job's last webhook event")
            # The worker's connection loss stops its task (Celery gives the message back), so an
            # attempt may end requeued and the next resume: every state change has its event.
            retries = job["attempts"] - 1
            assert states() == ["queued", *["running", "queued"] * retries, "running", "succeeded"], job

            # Restarted without its data, with jobs queued and no worker to take them: each is sent
            # again by the sweeper once a worker runs, and finishes.
            worker.stop()
            waiting = [submit(steps=2), submit(steps=2)]
            own_redis.stop()
            shutil.rmtree(own_redis.folder)
            own_redis.folder.mkdir()
            own_redis.start()
            assert redis.Redis(port=own_redis.port).dbsize() == 0
            again = start_worker(**{k: v for k, v in env.items() if k.startswith("CHECKERLESS_")})
            assert [end_of(j)["state"] for j in waiting] == ["succeeded", "succeeded"]
            assert "no message in the queue; sent again" in again.log.read_text()
        finally:
            receiver.close()
