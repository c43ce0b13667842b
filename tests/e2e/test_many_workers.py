"""Many workers sharing one Redis and one store (the machine's Redis, moto's S3 server, the
real API, real `checkerless worker` processes): two jobs train at once, one on each worker;
one worker dies whole (SIGKILL to its process group, as a machine dying would) and its job
finishes on the other from its last checkpoint; nothing is trained by two processes at once.
"""

from __future__ import annotations

import os
from datetime import datetime

import pytest

from tests.e2e.conftest import checkpoint_stored, child_processes, wait_for
from service.cli.store_proxy import StoreProxy
from tests.e2e.test_faults import ChildWatch, job, png, submit, wait_end

pytestmark = pytest.mark.slow
CHECKPOINT_EVERY = 5
# A 5 s lease (half of this): two trainings, two workers, the API and moto share two busy
# cores here, and a heartbeat that cannot get through in time stops its child by design.
STALE = {"CHECKERLESS_STALE_AFTER_S": "10"}


@pytest.fixture(scope="module")
def style_id(api) -> str:
    r = api.post("/v1/styles", files={"file": ("ihc.png", png("immunohistochemistry", 48, 48), "image/png")})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _worker_of(pid: int, workers) -> object:
    """The worker whose process group holds this training child's nearest ancestor in one (its
    pool process; a child forked warm has its worker's fork server between them)."""
    while pid > 1:
        with open(f"/proc/{pid}/stat") as f:
            pid = int(f.read().rsplit(")", 1)[1].split()[1])
        found = [w for w in workers if os.getpgid(pid) == w.proc.pid]
        if found:
            return found[0]
    raise AssertionError("no worker holds this training child")


def _span(attempt: dict) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(attempt["started_at"]), datetime.fromisoformat(attempt["ended_at"])


def test_two_workers_share_the_jobs_and_a_dead_ones_job_finishes_on_the_other(api, start_worker, style_id):
    """About a minute on a 2-core CPU: two workers, two jobs, one worker killed and its job
    resumed on the other past the stale timeout."""
    workers = [start_worker(queues="train", **STALE), start_worker(queues="train", **STALE)]
    jobs = [submit(api, style_id, steps=40, checkpoint_every=CHECKPOINT_EVERY) for _ in range(2)]
    watches = {j["id"]: ChildWatch(j["id"]) for j in jobs}

    # Both train at once, each on its own worker.
    wait_for(lambda: all(child_processes(j["id"]) for j in jobs), timeout=240, what="both jobs' children at once")
    both = [job(api, j["id"]) for j in jobs]
    assert [r["attempts"] for r in both] == [1, 1], both
    assert len({r["history"][0]["worker"] for r in both}) == 2, both

    # The first to train past a stored checkpoint (and still training) loses its worker.
    def past_a_checkpoint() -> tuple[dict, list[int]] | None:
        for j in jobs:
            r, pids = job(api, j["id"]), child_processes(j["id"])
            if r["state"] == "running" and r["step"] >= 2 * CHECKPOINT_EVERY and pids and checkpoint_stored(api, j["id"]):
                return j, pids
        return None

    a, pids_a = wait_for(past_a_checkpoint, timeout=240, what="a job to train past its first checkpoint")
    b = next(j for j in jobs if j is not a)
    doomed = _worker_of(pids_a[0], workers)
    survivor = next(w for w in workers if w is not doomed)

    doomed.kill()  # the whole worker, its pool process and (through PR_SET_PDEATHSIG) the child
    wait_for(lambda: not child_processes(a["id"]), timeout=15, what="the dead worker's child to die with it")

    done_a, done_b = wait_end(api, a["id"], timeout=420), wait_end(api, b["id"], timeout=420)
    assert {jid: w.stop() for jid, w in watches.items()} == {a["id"]: 1, b["id"]: 1}, \
        {jid: w.seen for jid, w in watches.items()}
    assert survivor.proc.poll() is None

    # The attempts of both, printed in full for a failure below (an assertion's message is cut).
    for done in (done_a, done_b):
        print(done["id"], *done["history"], sep="\n  ")
    # The undisturbed job: one attempt, on the survivor.
    assert done_b["state"] == "succeeded" and done_b["attempts"] == 1 and done_b["step"] == 40, done_b["history"]
    survivor_name = done_b["history"][0]["worker"]

    # The dead worker's job: requeued by the survivor's sweeper, resumed there from its checkpoint.
    assert done_a["state"] == "succeeded" and done_a["attempts"] == 2 and done_a["step"] == 40, done_a["history"]
    first, second = done_a["history"]
    assert first["worker"] != survivor_name and second["worker"] == survivor_name
    assert first["outcome"] == "requeued" and "stopped sending heartbeats" in first["reason"], first
    assert second["outcome"] == "succeeded"
    # Resumed from a stored checkpoint: after step 0, at or before where the dead attempt had got
    # to; so only the steps since that checkpoint were trained twice.
    assert 0 < second["start_step"] == done_a["resumed_from_step"] <= first["end_step"], done_a
    assert second["start_step"] % CHECKPOINT_EVERY == 0, done_a

    # The two jobs' first attempts overlapped in time, and the second attempt of the dead
    # worker's job began after its first had ended.
    a_start, a_end = _span(first)
    b_start, b_end = _span(done_b["history"][0])
    assert a_start < b_end and b_start < a_end, (first, done_b["history"][0])
    assert _span(second)[0] >= a_end


def _visible_devices(pid: int) -> str | None:
    with open(f"/proc/{pid}/environ", "rb") as f:
        env = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
    value = env.get(b"CUDA_VISIBLE_DEVICES")
    return value.decode() if value is not None else None


def test_a_worker_runs_a_job_per_gpu_and_each_child_sees_only_its_own(api, start_worker, style_id):
    start_worker.stop_all()  # the queue to this worker alone
    # Two GPUs named by the operator (CHECKERLESS_GPUS), here on the CPU: no --concurrency, so
    # the worker runs one training task per GPU, and each child is told which GPU is its own.
    worker = start_worker(queues="train", concurrency=None, CHECKERLESS_GPUS="2", CUDA_VISIBLE_DEVICES="5,7",
                          **STALE)
    jobs = [submit(api, style_id, steps=16, checkpoint_every=1000) for _ in range(2)]
    watches = [ChildWatch(j["id"]) for j in jobs]
    children = wait_for(lambda: all(child_processes(j["id"]) for j in jobs) and
                        [child_processes(j["id"])[0] for j in jobs], timeout=120, what="both jobs' children at once")
    assert sorted(_visible_devices(pid) for pid in children) == ["5", "7"]
    assert {_worker_of(pid, [worker]) for pid in children} == {worker}
    done = [wait_end(api, j["id"], timeout=300) for j in jobs]
    for d in done:  # in full, for a failure below (an assertion's message is cut)
        print(d["id"], *d["history"], sep="\n  ")
    assert [w.stop() for w in watches] == [1, 1]
    assert [d["state"] for d in done] == ["succeeded", "succeeded"] and [d["attempts"] for d in done] == [1, 1], done
    first, second = (d["history"][0] for d in done)
    assert first["worker"] == second["worker"]
    assert _span(first)[0] < _span(second)[1] and _span(second)[0] < _span(first)[1]  # trained at once


def test_a_slow_preparation_keeps_the_heartbeat_so_the_job_is_not_taken_for_dead(api, start_worker, style_id,
                                                                               s3_endpoint):
    # Before training, an attempt downloads its inputs (the style, content, the checkpoint to
    # resume from); with large ones that outlasts the stale timeout, and no sweeper may take
    # the job for dead meanwhile (one did: the heartbeat began only with the child).
    start_worker.stop_all()
    proxy = StoreProxy(s3_endpoint)
    try:
        start_worker(queues="train", CHECKERLESS_S3_ENDPOINT_URL=proxy.url)  # a 4 s stale timeout
        proxy.slow_get["/styles/"] = 6.0
        j = submit(api, style_id, steps=4)
        done = wait_end(api, j["id"], timeout=180)
    finally:
        proxy.close()
    assert done["state"] == "succeeded" and done["attempts"] == 1, done
