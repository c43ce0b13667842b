"""Faults, against the real parts (the machine's Redis, moto's S3 server, real workers): a
killed training child, the store failing mid-run, slow checkpoint uploads, duplicate
deliveries, a stylisation past its time limit, SIGTERM to a worker. After each, the job ends
succeeded (or failed with its reason) and was never trained by two processes at once."""

from __future__ import annotations

import io
import json
import os
import signal
import threading

import pytest
import redis
import skimage.data
from PIL import Image

from service.core import lease
from service.core.stores import Stores
from service.core.queue import STYLIZE_TASK, TRAIN_TASK, JobQueue, make_celery
from service.core.settings import Settings
from service.core.storage import open_store
from tests.e2e.conftest import PLAIN_NET, checkpoint_stored, child_processes, settings_of, wait_for
from service.cli.store_proxy import StoreProxy

pytestmark = pytest.mark.slow
TINY = {"size": 32, "batch": 1, **PLAIN_NET}


def png(name: str, w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(getattr(skimage.data, name)()).resize((w, h)).save(buf, format="PNG")
    return buf.getvalue()


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _describe(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/status") as f:
            status = {k: v.strip() for k, v in (line.split(":", 1) for line in f if ":" in line)}
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode()
        return f"{pid} (parent {status.get('PPid')}, {status.get('State')}): {cmd}"
    except OSError:
        return f"{pid} (gone)"


class ChildWatch:
    """Samples the training processes of one job all along: the most ever alive at once."""

    def __init__(self, job_id: str):
        self.job_id, self.most, self.seen = job_id, 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            found = child_processes(self.job_id)
            # A process the child itself forks (a subprocess it runs) shows the child's command
            # line until it execs: count training processes, not their own children.
            pids = [pid for pid in found if _parent(pid) not in found]
            if len(pids) > self.most:
                self.most, self.seen = len(pids), [_describe(pid) for pid in pids]

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.most


@pytest.fixture(scope="module")
def proxy(s3_endpoint):
    p = StoreProxy(s3_endpoint)
    yield p
    p.close()


@pytest.fixture(scope="module")
def queue(redis_url) -> JobQueue:
    return JobQueue(make_celery(Settings(broker_url=redis_url)))


@pytest.fixture(scope="module")
def style_id(api) -> str:
    r = api.post("/v1/styles", files={"file": ("ihc.png", png("immunohistochemistry", 48, 48), "image/png")})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.fixture(scope="module")
def worker(api, start_worker, proxy):
    """The worker of these tests reaches the store through the proxy (the API does not)."""
    return start_worker(CHECKERLESS_S3_ENDPOINT_URL=proxy.url)


def submit(api, style_id: str, **settings) -> dict:
    r = api.post("/v1/jobs", json={"style_id": style_id, **TINY, **settings})
    assert r.status_code == 201, r.text
    return r.json()


def job(api, job_id: str) -> dict:
    return api.get(f"/v1/jobs/{job_id}").json()


def wait_step(api, job_id: str, step: int, timeout: float = 180) -> dict:
    return wait_for(lambda: (j := job(api, job_id))["step"] >= step and j, timeout=timeout,
                    what=f"job {job_id} to reach step {step}")


def wait_end(api, job_id: str, timeout: float = 300) -> dict:
    return wait_for(lambda: (j := job(api, job_id))["state"] in ("succeeded", "failed", "cancelled") and j,
                    timeout=timeout, what=f"job {job_id} to end")


def test_a_job_whose_message_the_broker_lost_is_sent_again_and_finishes(api, start_worker, queue, redis_url,
                                                                        style_id):
    # First in this module, so no worker has started: the job's message waits in Redis, where
    # it is lost as a Redis restarted without its data loses it.
    broker = redis.Redis.from_url(redis_url)
    broker.delete("train")  # what other modules of this session left there
    j = submit(api, style_id, steps=2)
    assert queue.depths()["train"] == 1
    broker.delete("train")
    assert queue.depths()["train"] == 0
    w = start_worker(CHECKERLESS_RESEND_QUEUED_AFTER_S="1")
    try:
        assert wait_end(api, j["id"])["state"] == "succeeded"
        assert f"job {j['id']}: queued for 1 s with no message in the queue; sent again" in w.log.read_text()
    finally:
        w.stop()  # the module's other tests run on `worker`, through the proxy


def test_a_killed_training_child_is_retried_from_its_checkpoint(api, worker, style_id):
    steps = 80  # enough that the child is still training when it is killed (see the next test)
    j = submit(api, style_id, steps=steps, checkpoint_every=5)
    watch = ChildWatch(j["id"])
    wait_step(api, j["id"], 12)
    wait_for(lambda: checkpoint_stored(api, j["id"]), timeout=60, what="a stored checkpoint")
    for pid in child_processes(j["id"]):
        os.kill(pid, signal.SIGKILL)  # what the kernel's OOM killer does
    done = wait_end(api, j["id"])
    assert watch.stop() == 1, watch.seen
    assert done["state"] == "succeeded" and done["step"] == steps, done
    assert done["attempts"] == 2 and (done["resumed_from_step"] or 0) >= 5, json.dumps(done["history"], indent=1)
    first, second = done["history"]
    assert first["outcome"] == "requeued" and "killed by signal 9" in first["reason"]
    assert second["outcome"] == "succeeded" and second["start_step"] >= 5


def test_the_store_failing_mid_run_stops_the_child_then_the_job_resumes(api, worker, proxy, style_id, service_env):
    # Steps enough that the child is still training when the store fails: on a loaded machine
    # the first checkpoint's upload can take as long as 30 steps, and a job that had already
    # finished would end in one attempt when the store came back (rightly: nobody took it).
    steps = 80
    j = submit(api, style_id, steps=steps, checkpoint_every=5)
    watch = ChildWatch(j["id"])
    wait_step(api, j["id"], 12)
    wait_for(lambda: checkpoint_stored(api, j["id"]), timeout=60, what="a stored checkpoint")
    proxy.down()  # the worker's store refuses connections; the API still reads the record
    try:
        # At its lease (2 s here) the supervisor pauses its child, at the stale timeout (4 s) it
        # stops it: no one may run it alongside the attempt a sweeper may then begin.
        wait_for(lambda: not child_processes(j["id"]), timeout=15, what="the child to be stopped")
        stalled = job(api, j["id"])
        assert stalled["state"] == "running" and stalled["attempts"] == 1
        # Until its lease lapses while the store is still down: the record read from the store
        # itself (the API's path, not the worker's), by the lease's own rule.
        settings = settings_of(service_env)
        jobs = Stores(open_store(settings)).jobs
        wait_for(lambda: lease.lapsed(jobs.get(j["id"]), settings.stale_after_s), timeout=60,
                 what="the job's lease to lapse")
    finally:
        proxy.up()
    done = wait_end(api, j["id"])
    assert watch.stop() == 1, watch.seen
    assert done["state"] == "succeeded" and done["attempts"] == 2, json.dumps(done["history"], indent=1)
    assert "stopped sending heartbeats" in done["history"][0]["reason"]
    assert (done["resumed_from_step"] or 0) >= 5, json.dumps(done["history"], indent=1)
    assert done["step"] == steps


def _stopped(pid: int) -> bool:
    """SIGSTOPped (state T)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "T"
    except OSError:
        return False


def test_a_store_stall_shorter_than_the_stale_timeout_pauses_the_child_and_the_attempt_goes_on(api, worker, proxy,
                                                                                              style_id):
    # A loaded machine or a slow store delays a heartbeat past half the stale timeout (2 s here):
    # no sweeper may take the job yet, so the child waits, paused, and trains on once the
    # heartbeat gets through, in the same attempt; before, the attempt ended and was requeued.
    j = submit(api, style_id, steps=40, checkpoint_every=5)
    watch = ChildWatch(j["id"])
    wait_step(api, j["id"], 5)
    record = f"/jobs/{j['id']}/job.json"
    proxy.slow[record] = 3.0  # the next heartbeat's write waits 3 s: past the 2 s lease, within the 4 s timeout
    try:
        paused = wait_for(lambda: [pid for pid in child_processes(j["id"]) if _stopped(pid)], timeout=30,
                          what="the child to be paused")
    finally:
        del proxy.slow[record]  # the write already waiting goes through 3 s after it came
    wait_for(lambda: not any(_stopped(pid) for pid in paused), timeout=15, what="the child to go on")
    done = wait_end(api, j["id"])
    assert watch.stop() == 1, watch.seen
    assert done["state"] == "succeeded" and done["step"] == 40 and done["attempts"] == 1, done["history"]


def test_a_slow_checkpoint_upload_does_not_stop_the_heartbeat(api, worker, proxy, style_id):
    proxy.slow["/checkpoint/"] = 6.0  # each checkpoint PUT takes longer than the stale timeout (4 s)
    try:
        j = submit(api, style_id, steps=30, checkpoint_every=5)
        done = wait_end(api, j["id"])
    finally:
        proxy.slow.clear()
    assert done["state"] == "succeeded" and done["attempts"] == 1, done  # never taken for dead
    assert any(f"/jobs/{j['id']}/checkpoint/" in p for p in proxy.puts)
    # The job ended only once its final checkpoint was stored: a stylisation can use it at once.
    assert api.get(f"/v1/jobs/{j['id']}/checkpoint").status_code == 200


def test_duplicate_deliveries_run_a_job_and_a_stylisation_once(api, worker, start_worker, queue, style_id):
    start_worker()  # a second, idle worker: it receives the duplicates while the first trains
    j = submit(api, style_id, steps=30, checkpoint_every=10)
    watch = ChildWatch(j["id"])
    wait_step(api, j["id"], 3)
    queue.send(TRAIN_TASK, j["id"])
    queue.send(TRAIN_TASK, j["id"])
    done = wait_end(api, j["id"])
    assert watch.stop() == 1, watch.seen
    assert done["state"] == "succeeded" and done["attempts"] == 1, done

    r = api.post(f"/v1/jobs/{j['id']}/stylize", files=[("files", ("cat.png", png("chelsea", 40, 30), "image/png"))])
    assert r.status_code == 202, r.text
    queue.send(STYLIZE_TASK, r.json()["id"])
    s = wait_for(lambda: (s := api.get(f"/v1/stylizations/{r.json()['id']}").json())["state"]
                 in ("succeeded", "failed") and s, timeout=120, what="the stylisation")
    assert s["state"] == "succeeded" and len(s["outputs"]) == 1, s


# The last two tests stop every worker first: each needs the queue to itself.


def test_a_stylisation_past_its_time_limit_fails_with_the_reason(api, worker, start_worker, style_id):
    j = submit(api, style_id, steps=2)
    assert wait_end(api, j["id"])["state"] == "succeeded"
    start_worker.stop_all()
    hasty = start_worker(CHECKERLESS_STYLIZE_TIME_LIMIT_S="1")  # less than the child needs to import torch
    try:
        r = api.post(f"/v1/jobs/{j['id']}/stylize", files=[("files", ("cat.png", png("chelsea", 40, 30), "image/png"))])
        s = wait_for(lambda: (s := api.get(f"/v1/stylizations/{r.json()['id']}").json())["state"]
                     in ("succeeded", "failed") and s, timeout=120, what="the stylisation")
        assert s["state"] == "failed" and "time limit of 1 s" in s["error"], s
    finally:
        hasty.stop()


def test_sigterm_to_a_worker_checkpoints_the_job_and_another_finishes_it(api, start_worker, style_id):
    start_worker.stop_all()
    first = start_worker()
    j = submit(api, style_id, steps=60, checkpoint_every=1000)  # no periodic checkpoint: only the one on stop
    watch = ChildWatch(j["id"])
    wait_step(api, j["id"], 8)
    first.terminate()
    first.proc.wait(timeout=60)  # a warm shutdown: the job checkpointed and went back on the queue
    requeued = job(api, j["id"])
    assert requeued["state"] == "queued", requeued
    assert "asked to stop" in requeued["history"][0]["reason"]
    start_worker()
    done = wait_end(api, j["id"])
    assert watch.stop() == 1, watch.seen
    assert done["state"] == "succeeded" and done["attempts"] == 2, done
    assert done["resumed_from_step"] >= 8
