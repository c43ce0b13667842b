"""The client library's tests run against the real service: the e2e parts (Redis, moto's S3
server, a worker process, the API under uvicorn; tests/e2e/conftest.py) and, where no job may
be trained, an API alone on the embedded defaults (a local store and a broker in a folder,
no worker), so what is submitted there stays queued."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import api_key, running_api, service_env, start_worker  # noqa: F401 (fixtures)


@dataclass
class Server:
    url: str
    env: dict[str, str]
    log: Path

    def new_key(self, **key) -> str:
        """A key of a new owner (so each test has its own jobs and quotas)."""
        return api_key(self.env, **key)


@pytest.fixture(scope="module")
def trainer(service_env, start_worker, tmp_path_factory) -> Server:
    """The API with a worker that trains and stylises (Redis, S3)."""
    log = tmp_path_factory.mktemp("trainer") / "api.log"
    with running_api(service_env, log) as api:
        start_worker(CHECKERLESS_EXPORT_FORMATS='["onnx", "torchscript"]')  # the user path downloads them
        yield Server(str(api.base_url), service_env, log)


@pytest.fixture(scope="module")
def idle(service_env, tmp_path_factory) -> Server:
    """The API alone on the embedded defaults, nothing taking its queue: two unfinished jobs per
    owner, and a Retry-After of 1 s on that limit's 429."""
    data = tmp_path_factory.mktemp("idle")
    env = {**service_env, "CHECKERLESS_STORE": "local", "CHECKERLESS_BROKER_URL": "", "CHECKERLESS_DATA_DIR": str(data),
           "CHECKERLESS_QUOTA_ACTIVE_JOBS": "2", "CHECKERLESS_QUOTA_RETRY_AFTER_S": "1"}
    with running_api(env, data / "api.log") as api:
        yield Server(str(api.base_url), env, data / "api.log")
