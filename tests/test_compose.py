"""docker-compose.yml holds what production needs (no Docker engine runs here)."""

import shutil
import re
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
        command = list(map(str, svc["command"]))
        assert command[command.index("--concurrency") + 1] == "1", name  # one job at a time on its GPU
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


def _compose_plugin() -> bool:
    """`docker compose version` answers only where the compose plugin is installed; a docker
    CLI without it says "unknown command" (and `docker compose config -q` then fails on -q)."""
    if shutil.which("docker") is None:
        return False
    p = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    return p.returncode == 0 and "version" in p.stdout.lower()


# Top-level and per-service keys of the Compose specification that this file may use.
TOP_KEYS = {"name", "services", "volumes", "networks", "configs", "secrets"}
SERVICE_KEYS = {"image", "build", "command", "entrypoint", "environment", "ports", "volumes", "depends_on",
                "healthcheck", "deploy", "restart", "logging", "init", "shm_size", "stop_grace_period", "hostname",
                "configs"}
_VAR = re.compile(r"\$(\$|\{[A-Za-z_][A-Za-z0-9_]*(:?[-?+][^}]*)?\}|[A-Za-z_][A-Za-z0-9_]*)")


def _strings(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)
    elif isinstance(node, str):
        yield node


def test_compose_file_is_valid(compose):
    """With the plugin: `docker compose config -q`. Without it (the docker CLI alone, as on a
    fresh machine): the structure Compose itself would check."""
    if _compose_plugin():
        p = subprocess.run(["docker", "compose", "config", "-q"], cwd=ROOT, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        return
    extensions = {k for k in compose if k.startswith("x-")}
    assert set(compose) - extensions <= TOP_KEYS, set(compose) - extensions - TOP_KEYS
    services = compose["services"]
    for name, svc in services.items():
        extra = {k for k in svc if not k.startswith("x-")} - SERVICE_KEYS
        assert not extra, f"{name}: unknown keys {extra}"
        assert "image" in svc or "build" in svc, name
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown service {dep}"
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert source.startswith((".", "/")) or source in compose.get("volumes", {}), f"{name}: volume {source}"
        for c in svc.get("configs", []):
            assert c["source"] in compose.get("configs", {}), f"{name}: config {c['source']}"
        for port in svc.get("ports", []):
            assert re.fullmatch(r"(\S+:)?\S+:\d+", str(port)), f"{name}: port {port}"
        if "healthcheck" in svc and not svc["healthcheck"].get("disable"):
            assert svc["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
    for text in _strings(compose):  # every "$" is a variable or an escaped "$$"
        rest = _VAR.sub("", text)
        assert "$" not in rest, f"bad variable syntax in {text!r}"


def test_the_images_api_keeps_idle_connections_as_long_as_serve_does():
    """The API in the images (uvicorn's command line) and `checkerless serve` keep an idle
    connection the same time: the one value service/cli/launch.py explains."""
    from service.cli.launch import KEEP_ALIVE_S

    found = re.search(r"UVICORN_TIMEOUT_KEEP_ALIVE=(\d+)", (ROOT / "Dockerfile").read_text())
    assert found and int(found.group(1)) == KEEP_ALIVE_S
