"""docker-compose.yml holds what production needs (no Docker engine runs here)."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_gpu_workers_reserve_one_gpu_each_and_have_time_to_checkpoint(compose):
    gpu_workers = {n: s for n, s in compose["services"].items() if n.startswith("worker-gpu")}
    assert len(gpu_workers) >= 1
    ids = []
    for name, svc in gpu_workers.items():
        devices = svc["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["driver"] == "nvidia" and devices[0]["capabilities"] == ["gpu"], name
        ids += devices[0]["device_ids"]
        assert svc["shm_size"] and svc["stop_grace_period"]
        assert "--concurrency" in " ".join(map(str, svc["command"])) and "1" in map(str, svc["command"])
    assert len(ids) == len(set(ids))  # one worker per GPU


def test_redis_keeps_its_data_and_never_evicts(compose):
    cmd = " ".join(map(str, compose["services"]["redis"]["command"]))
    assert "--appendonly yes" in cmd and "noeviction" in cmd


def test_images_are_pinned_and_services_have_healthchecks(compose):
    for name, svc in compose["services"].items():
        image = svc.get("image", "")
        if image and "${" not in image:
            assert ":" in image and not image.endswith(":latest"), name
    for name in ("api", "redis", "s3"):
        assert "healthcheck" in compose["services"][name], name


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI on this machine")
def test_docker_compose_config_accepts_it():
    p = subprocess.run(["docker", "compose", "config", "-q"], cwd=ROOT, capture_output=True, text=True)
    if "is not a docker command" in p.stderr or "unknown command" in p.stderr:
        pytest.skip("docker CLI without the compose plugin")
    assert p.returncode == 0, p.stderr
