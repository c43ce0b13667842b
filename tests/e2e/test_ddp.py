"""A job on several devices, through HTTP and a real worker: on the CPU, Lightning's DDP trains
it as two processes (the worker's child and the rank it starts), and the job still has one
checkpoint, one set of outputs and one progress report; a cancel ends both ranks."""

from __future__ import annotations

import io
import json

import pytest
import torch

from tests.e2e.conftest import PLAIN_NET, child_processes, wait_for
from tests.e2e.test_service import photo, wait_state

TINY = {"size": 32, "batch": 2, "devices": 2, **PLAIN_NET}


@pytest.fixture(scope="module")
def worker(start_worker):
    return start_worker(queues="train")


@pytest.fixture(scope="module")
def style_id(api) -> str:
    r = api.post("/v1/styles", files={"file": ("ihc.png", photo("immunohistochemistry", 64, 64), "image/png")})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def submit(api, style_id: str, **settings) -> dict:
    r = api.post("/v1/jobs", json={"style_id": style_id, **TINY, **settings})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.mark.slow
def test_a_two_device_job_trains_as_two_processes_and_reports_once(api, worker, style_id):
    job = submit(api, style_id, steps=4, checkpoint_every=2)
    assert job["devices"] == 2
    wait_for(lambda: len(child_processes(job["id"])) == 2, timeout=180, what="the child and its second rank")
    j = wait_state(api, job["id"], {"succeeded", "failed"}, timeout=300)
    assert j["state"] == "succeeded", j
    assert not child_processes(job["id"])
    assert j["step"] == 4 and j["attempts"] == 1 and j["devices"] == 2
    assert {"checkpoint", "report", "preview"} <= set(j["links"])
    names = [p["name"] for p in j["panel"]]
    assert names and len(names) == len(set(names))  # one panel, not one per rank
    steps = [row["step"] for row in j["loss_curve"]]
    assert steps == sorted(set(steps)) and steps[-1] == 4
    report = json.loads(api.get(j["links"]["report"]).content)
    assert [row["step"] for row in report["losses"]] == [1, 2, 3, 4]  # rank 0's rows, each step once
    ckpt = torch.load(io.BytesIO(api.get(j["links"]["checkpoint"]).content), map_location="cpu", weights_only=False)
    assert ckpt["checkerless"]["step"] == 4


@pytest.mark.slow
def test_cancelling_a_two_device_job_ends_both_ranks(api, worker, style_id):
    steps = 299  # more than the test waits for: it cancels after step 2
    job = submit(api, style_id, steps=steps, checkpoint_every=1000)
    wait_for(lambda: api.get(f"/v1/jobs/{job['id']}").json()["step"] >= 2, timeout=180, what="training to start")
    assert len(child_processes(job["id"])) == 2
    assert api.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
    j = wait_state(api, job["id"], {"cancelled"}, timeout=60)
    assert j["step"] < steps
    assert not child_processes(job["id"])  # the STOP reached both ranks, and the group is gone


@pytest.mark.parametrize("settings, fragment", [
    ({"batch": 3, "devices": 2}, "batch 3 does not split evenly over 2 devices"),
    ({"devices": 0}, "devices: Input should be greater than or equal to 1"),
    ({"devices": 9}, "devices must be between 1 and 8"),
])
def test_devices_a_job_cannot_use_are_422_with_what_to_fix(api, style_id, settings, fragment):
    for path, extra in (("/v1/jobs", {}), ("/v1/experiments", {"variants": ["deconv", "resize-nearest"]})):
        r = api.post(path, json={"style_id": style_id, "size": 32, **settings, **extra})
        assert r.status_code == 422 and fragment in r.json()["detail"], r.text


def test_an_experiment_shares_devices_with_each_of_its_jobs(api, style_id):
    r = api.post("/v1/experiments", json={"style_id": style_id, "size": 32, "batch": 2, "devices": 2, "steps": 2,
                                          "variants": ["deconv", "resize-nearest"]})
    assert r.status_code == 201, r.text
    exp = r.json()
    assert exp["settings"]["devices"] == 2
    assert [v["devices"] for v in exp["variants"]] == [2, 2]
    for v in exp["variants"]:  # not trained here: the tests above did that
        assert api.post(f"/v1/jobs/{v['id']}/cancel").status_code == 202
