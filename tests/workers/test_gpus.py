"""GPU slots: which GPUs a worker finds (without torch), and how its tasks share them through
lock files, across real processes."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from service.core.stores import Stores
from service.core.keys import new_id
from service.core.records import JobRecord, JobState
from service.core.settings import Settings
from service.core.storage import LocalStore
from workers.gpus import GpuSlots, parse_nvidia_smi, worker_gpus
from workers.drain import drain_marker
from workers.train_task import run_train_job

TWO_GPUS = """GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0f6a1b2c-aaaa-bbbb-cccc-000000000000)
GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-1f6a1b2c-aaaa-bbbb-cccc-111111111111)
"""
MIG = """GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5d5ba0d6-aaaa-bbbb-cccc-000000000000)
  MIG 3g.20gb     Device  0: (UUID: MIG-1a2b3c4d-aaaa-5555-9999-000000000001)
  MIG 3g.20gb     Device  1: (UUID: MIG-1a2b3c4d-aaaa-5555-9999-000000000002)
GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-6d5ba0d6-aaaa-bbbb-cccc-111111111111)
"""


def test_nvidia_smi_lines_become_cuda_visible_devices_entries():
    assert parse_nvidia_smi(TWO_GPUS) == ["0", "1"]
    assert parse_nvidia_smi(MIG) == ["MIG-1a2b3c4d-aaaa-5555-9999-000000000001",
                                     "MIG-1a2b3c4d-aaaa-5555-9999-000000000002", "1"]
    assert parse_nvidia_smi("No devices were found\n") == []


def test_the_gpus_setting_and_cuda_visible_devices_decide_before_nvidia_smi(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3,-1,4")
    assert worker_gpus(Settings()) == ["2", "3"]  # CUDA stops at the first invalid entry
    assert worker_gpus(Settings(gpus=1)) == ["2"]
    assert worker_gpus(Settings(gpus=0, device="cuda")) == []
    with pytest.raises(ValueError, match="CHECKERLESS_GPUS is 3 but CUDA_VISIBLE_DEVICES names only 2"):
        worker_gpus(Settings(gpus=3))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert worker_gpus(Settings(gpus=2)) == ["0", "1"]
    assert worker_gpus(Settings(device="cpu")) == []  # a CPU worker does not look for GPUs


def _hold(folder, gpus, count, started, release):
    """In a process of its own, as a pool process would: hold `count` GPUs until told."""
    with GpuSlots(gpus, folder).hold(count, give_up=lambda: False) as got:
        started.put(got)
        release.wait()


def test_pool_processes_never_share_a_gpu_and_a_dead_ones_gpu_is_free_again(tmp_path):
    ctx = multiprocessing.get_context("fork")
    started = ctx.Queue()
    # Each waits on its own event: a process killed while waiting on a shared one would leave it stuck.
    first = ctx.Process(target=_hold, args=(tmp_path, ["0", "1"], 1, started, ctx.Event()))
    release = ctx.Event()
    second = ctx.Process(target=_hold, args=(tmp_path, ["0", "1"], 1, started, release))
    for p in (first, second):
        p.start()
    assert sorted(started.get(timeout=20) + started.get(timeout=20)) == ["0", "1"]
    slots = GpuSlots(["0", "1"], tmp_path)
    with slots.hold(1, give_up=lambda: True) as got:
        assert got is None  # both taken: this task gave up waiting
    os.kill(first.pid, signal.SIGKILL)  # a pool process killed whole frees its GPU
    first.join()
    with slots.hold(1, give_up=lambda: False) as got:
        assert got is not None and len(got) == 1
    release.set()
    second.join(timeout=20)


def test_a_task_waits_for_all_its_gpus_at_once(tmp_path):
    ctx = multiprocessing.get_context("fork")
    started, release = ctx.Queue(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(tmp_path, ["0", "1"], 1, started, release))
    holder.start()
    held = started.get(timeout=20)
    slots = GpuSlots(["0", "1"], tmp_path)
    threading.Timer(1.5, release.set).start()
    t = time.monotonic()
    with slots.hold(2, give_up=lambda: False) as got:
        assert got == ["0", "1"] and time.monotonic() - t >= 1.0, (held, got)
    holder.join(timeout=20)
    with pytest.raises(ValueError, match="3 GPUs asked for; this worker has 2"):
        with slots.hold(3, give_up=lambda: False):
            pass


def _setup(tmp_path):
    settings = Settings(data_dir=tmp_path, stale_after_s=4, heartbeat_s=0.5)
    store = LocalStore(tmp_path / "store")
    stores = Stores(store)
    job = stores.jobs.create(JobRecord(id=new_id(), config={"decoder": "deconv", "steps": 10}, style_id=new_id(), steps=10))
    return settings, store, stores, job


def test_a_job_waiting_for_a_gpu_stays_queued_and_leaves_when_cancelled_or_the_worker_stops(tmp_path):
    settings, store, stores, job = _setup(tmp_path)
    slots = GpuSlots(["0"], settings.work_dir / "gpus")
    with slots.hold(1, give_up=lambda: False):  # another task of this worker trains on the one GPU
        threading.Timer(1.0, lambda: stores.jobs.request_cancel(job.id)).start()
        sent = []
        assert run_train_job(settings, store, job.id, worker="w", requeue=sent.append, slots=slots) is None
        record = stores.jobs.get(job.id)
        assert record.state == JobState.cancelled and record.attempts == 0 and sent == []

        other = stores.jobs.create(JobRecord(id=new_id(), config={"decoder": "deconv", "steps": 10}, style_id=new_id(),
                                             steps=10))
        marker = drain_marker(settings, os.getppid())

        def stop_worker() -> None:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()

        threading.Timer(1.0, stop_worker).start()
        assert run_train_job(settings, store, other.id, worker="w", requeue=sent.append, slots=slots) is None
        assert sent == [other.id]  # handed back to the queue for another worker, untouched
        record = stores.jobs.get(other.id)
        assert record.state == JobState.queued and record.attempts == 0


def test_a_worker_told_of_more_gpus_than_it_may_see_says_so_and_exits(tmp_path):
    env = {**os.environ, "CHECKERLESS_DATA_DIR": str(tmp_path), "CHECKERLESS_GPUS": "3", "CUDA_VISIBLE_DEVICES": "5,7"}
    p = subprocess.run([sys.executable, "-m", "service.cli", "worker", "--queues", "train"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.strip() == "error: CHECKERLESS_GPUS is 3 but CUDA_VISIBLE_DEVICES names only 2 GPU(s)"


def test_a_job_asking_for_more_gpus_than_its_worker_has_fails_with_the_reason(tmp_path):
    settings, store, stores, _ = _setup(tmp_path)
    job = stores.jobs.create(JobRecord(id=new_id(), config={"decoder": "deconv", "steps": 10}, style_id=new_id(), steps=10,
                                       devices=3))
    slots = GpuSlots(["0", "1"], settings.work_dir / "gpus")
    assert run_train_job(settings, store, job.id, worker="w", requeue=[].append, slots=slots) == JobState.failed
    record = stores.jobs.get(job.id)
    assert record.error == "the job asks for 3 GPUs and its worker has 2; a job's GPUs must all be on one worker"
    assert record.attempts == 0 and job.id not in stores.jobs.active_ids()
