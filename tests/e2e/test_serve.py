"""`checkerless serve`: the API and workers with nothing installed (a broker in a folder,
a local store), driven by the `checkerless jobs` client as a user would."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import skimage.data
from PIL import Image


from tests.cli_process import run_cli
from tests.e2e.conftest import PLAIN_NET, ROOT, TINY_JOBS, free_port, wait_for


# A tiny job's probe size, and no ONNX/TorchScript exports (10-20 s of CPU a job; not what these test).


def cli(*args, env=None) -> subprocess.CompletedProcess:
    return run_cli(args, cwd=ROOT, env={**os.environ, **(env or {})})


def worker_pids(data_dir) -> list[int]:
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/environ", "rb") as f:
                    environ = f.read()
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if b"worker" in cmd and str(data_dir).encode() in environ:
                pids.append(int(d))
    return pids


def test_serve_then_submit_watch_and_stylize_with_the_client(tmp_path):
    """Started in an empty folder, `serve` writes only under --data-dir (broker, store, scratch)."""
    port, data, empty = free_port(), tmp_path / "data", tmp_path / "here"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKERLESS_")} | TINY_JOBS
    env["OMP_NUM_THREADS"] = "1"
    server = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--data-dir", str(data)],
                              cwd=empty, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ok(url), timeout=60, what="checkerless serve")
        assert httpx.get(f"{url}/v1/ready").json()["broker"] == "ok"
        style, photo = tmp_path / "style.png", tmp_path / "photo.png"
        Image.fromarray(skimage.data.immunohistochemistry()).resize((48, 48)).save(style)
        Image.fromarray(np.asarray(Image.fromarray(skimage.data.chelsea()).resize((51, 37)))).save(photo)

        # No key: refused. The client finds the local key `serve` made in its data folder.
        p = cli("jobs", "list", "--api", url, env={"CHECKERLESS_DATA_DIR": str(tmp_path / "elsewhere")})
        assert p.returncode == 1 and "needs an API key" in p.stderr and "HTTP 401" in p.stderr, p.stderr
        mine = {"CHECKERLESS_DATA_DIR": str(data)}
        assert (data / "local-key").stat().st_mode & 0o077 == 0  # readable by its user alone
        p = cli("jobs", "submit", style, "--api", url, "--size", "32", "--steps", "4", "--batch", "1",
                "--decoder", "deconv", "--watch", "--json", env=mine)
        assert p.returncode == 0, p.stderr
        job = json.loads(p.stdout)
        assert job["state"] == "succeeded" and job["step"] == 4

        p = cli("jobs", "stylize", job["id"], photo, "--api", url, "--out", tmp_path / "out", env=mine)
        assert p.returncode == 0, p.stderr + p.stdout
        with Image.open(tmp_path / "out" / "photo.png") as out:  # noqa: SIM117
            assert out.size == (51, 37)

        p = cli("jobs", "list", "--api", url, "--json", env=mine)
        assert [j["id"] for j in json.loads(p.stdout)] == [job["id"]]
        p = cli("jobs", "show", "0" * 32, "--api", url, env=mine)
        assert p.returncode == 1 and p.stderr.startswith("error: no job") and "HTTP 404" in p.stderr
        assert worker_pids(data)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    wait_for(lambda: not worker_pids(data), timeout=70, what="the workers to stop with the server")
    assert list(empty.iterdir()) == []
    assert {p.name for p in data.iterdir()} <= {"broker", "store", "work", "local-key"}


def test_a_train_worker_killed_mid_run_is_started_again_and_the_job_finishes(tmp_path):
    """About a minute on a 2-core CPU: `serve` starts its whole stack, then starts the killed
    worker again (a Python start-up), and the job trains again in a new child."""
    port, data = free_port(), tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKERLESS_")} | TINY_JOBS
    env.update(OMP_NUM_THREADS="1", CHECKERLESS_HEARTBEAT_S="0.5", CHECKERLESS_STALE_AFTER_S="4")
    server = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--data-dir", str(data)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ok(url), timeout=60, what="checkerless serve")
        api = httpx.Client(base_url=url, headers={"X-API-Key": (data / "local-key").read_text().strip()}, timeout=30)
        style = tmp_path / "style.png"
        Image.fromarray(skimage.data.immunohistochemistry()).resize((48, 48)).save(style)
        style_id = api.post("/v1/styles", files={"file": ("s.png", style.read_bytes(), "image/png")}).json()["id"]
        job = api.post("/v1/jobs", json={"style_id": style_id, "size": 32, "batch": 1, "steps": 60,
                                         "checkpoint_every": 10, **PLAIN_NET}).json()
        wait_for(lambda: api.get(f"/v1/jobs/{job['id']}").json()["step"] >= 1, timeout=240, what="the job to run")
        (train,) = [pid for pid in worker_pids(data) if parent(pid) == server.pid
                    and b"train" in open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")]
        os.killpg(train, signal.SIGKILL)  # the worker and its training child, mid-run

        def restarted() -> dict | None:
            ready = httpx.get(f"{url}/v1/ready").json()
            return ready if ready["worker train"].startswith("ok (restarted 1 times") else None
        ready = wait_for(restarted, timeout=60, what="serve to start the train worker again")
        assert "last exit code -9" in ready["worker train"] and ready["status"] == "ready", ready
        done = wait_for(lambda: (j := api.get(f"/v1/jobs/{job['id']}").json())["state"] in ("succeeded", "failed") and j,
                        timeout=300, what="the job to finish on the restarted worker")
        assert done["state"] == "succeeded" and done["step"] == 60, done
        assert done["attempts"] >= 2, done
    finally:
        server.send_signal(signal.SIGTERM)
        log, _ = server.communicate(timeout=90)
    assert "the train worker" in log and "exited with code -9" in log, log[-2000:]


def parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_the_client_says_when_the_api_is_down(tmp_path):
    p = cli("jobs", "list", "--api", f"http://127.0.0.1:{free_port()}")
    assert p.returncode == 1 and "cannot reach the API" in p.stderr and "Traceback" not in p.stderr


def _ok(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v1/health").status_code == 200
    except httpx.HTTPError:
        time.sleep(0.2)
        return False


def test_a_service_of_its_own_keeps_only_the_settings_that_size_its_jobs(monkeypatch):
    """The demo's, the load test's and stylize-bench's own service is the embedded default: a
    shell's CHECKERLESS_* settings that place a service (its data, its limits) stay out, those
    that only size each job's extra work (the probe, the exports) go in."""
    from service.cli.launch import WORK_SIZE_SETTINGS, own_service_env

    monkeypatch.setenv("CHECKERLESS_DATA_DIR", "/somewhere/else")
    monkeypatch.setenv("CHECKERLESS_MAX_PIXELS", "10")
    monkeypatch.setenv("CHECKERLESS_PROBE_SIZE", "40")
    monkeypatch.setenv("CHECKERLESS_PREVIEW_SIZE", "48")
    monkeypatch.setenv("CHECKERLESS_EXPORT_FORMATS", "[]")
    env = own_service_env({"OMP_NUM_THREADS": "1"})
    assert {k for k in env if k.startswith("CHECKERLESS_")} == set(WORK_SIZE_SETTINGS)
    assert env["CHECKERLESS_PROBE_SIZE"] == "40" and env["OMP_NUM_THREADS"] == "1"


def test_serve_can_take_the_port_a_server_just_left():
    """The port check before `serve` binds as uvicorn does: a server's closed connections linger
    in TIME_WAIT for a minute, and the port is free for the next server all the same."""
    from service.cli.launch import _free_port

    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server's end closes first, so it is the one left in TIME_WAIT
        client.close()
    assert _free_port("127.0.0.1", port)
