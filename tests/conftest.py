"""Shared fixtures: tiny settings, images made by the test or shipped by scikit-image."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Training on two cores: keep torch from oversubscribing them in tests (scripts/test.sh runs
# two pytest-xdist workers with one thread each).
os.environ.setdefault("OMP_NUM_THREADS", "2")
# The training probe at a test's size, in this process and every one it starts (models/probe_row.py
# probe_size): a few steps at 32 px spend most of their time probing at the default 128 px. The
# tests of the probe's own numbers name their size.
os.environ.setdefault("CHECKERLESS_PROBE_SIZE", "32")
# Likewise a finished run's preview and panel (models/preview_size.py): seconds of CPU a run at
# their full size, for pictures no test looks at closely.
os.environ.setdefault("CHECKERLESS_PREVIEW_SIZE", "64")

# The Redis databases tests/service flush as their own, one per pytest-xdist worker (gw0, gw1,
# ...; none is gw0); tests/e2e claim others (tests/e2e/conftest.py, REDIS_DBS).
SERVICE_REDIS_DBS = (14, 9, 8, 7)


def service_redis_db() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return SERVICE_REDIS_DBS[int(worker.removeprefix("gw")) % len(SERVICE_REDIS_DBS)]


# The order pytest-xdist hands whole files to its workers in (`--dist loadfile
# --no-loadscope-reorder`, scripts/test.sh): the files with the most tests first (what xdist
# itself would do), except that the two longest single files go first of all. Both have few
# tests, so xdist's own order ran them last, alone: in a timeline of a fresh clone's run
# (scripts/test_timeline.py, 2026-12-06, AMD EPYC, 2 cores) test_compile started at 921 s and
# the run's last 220 s had two workers or fewer busy; in this order the tail was 60 s. Every
# file of 30 s or more longest first was no faster (1,127 s of pytest against 1,108 for this
# order, fresh clones on the same machine): both cores are busy all through either way, so
# only the tail is the order's to save. Order only: no test depends on it.
LONGEST_FIRST = ["tests/models/test_compile.py", "tests/test_gpu_bench.py"]


def pytest_collection_modifyitems(items) -> None:
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    files = [item.nodeid.split("::", 1)[0] for item in items]
    tests = Counter(files)
    order = {item.nodeid: (rank.get(f, len(rank)), -tests[f]) for item, f in zip(items, files)}
    items.sort(key=lambda item: order[item.nodeid])  # stable: within a file, as collected


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """With CHECKERLESS_TEST_TIMELINE=FILE, one JSON line per test: its worker, when it started
    and ended, and the CPU seconds this process and its reaped children spent on it (where the
    suite's time goes: which files overlap, what runs alone at the end)."""
    path = os.environ.get("CHECKERLESS_TEST_TIMELINE")
    if not path:
        return (yield)
    import json
    import resource
    import time

    from tests import cli_process

    def cpu() -> float:  # with the CLI's processes, whose parent is tests/cli_process.py's fork server
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime + cli_process.forked_cpu_s

    started, cpu_before = time.time(), cpu()
    try:
        return (yield)
    finally:
        with open(path, "a") as f:
            f.write(json.dumps({"test": item.nodeid, "worker": os.environ.get("PYTEST_XDIST_WORKER", "-"),
                                "start": round(started, 2), "end": round(time.time(), 2),
                                "cpu_s": round(cpu() - cpu_before, 2)}) + "\n")


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    """moto's S3 server over HTTP, in a process of its own (service/cli/own_s3.py): every test's
    boto3 client talks to it."""
    from service.cli.own_s3 import S3Server

    server = S3Server().start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A database of the machine's Redis that this session alone holds (tests/e2e/conftest.py
    REDIS_DBS), flushed before and after. Here, not beside the e2e fixtures that use it, so
    that tests/client, which imports those, shares one claim per worker with tests/e2e."""
    from tests.e2e.conftest import CLAIM, claim_redis_db

    client = claim_redis_db()
    client.flushdb()
    client.set(CLAIM, os.getpid(), ex=7200)
    yield f"redis://127.0.0.1:6379/{client.connection_pool.connection_kwargs['db']}"
    client.flushdb()


@pytest.fixture(scope="session")
def vgg19():
    from models.loss_network import build_loss_network

    return build_loss_network("vgg19")


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    """A folder of three small real photographs (scikit-image's), one in a subfolder."""
    import skimage.data

    d = tmp_path / "content"
    (d / "sub").mkdir(parents=True)
    Image.fromarray(skimage.data.astronaut()).resize((96, 96)).save(d / "astronaut.png")
    Image.fromarray(skimage.data.coffee()).resize((120, 80)).save(d / "coffee.jpg")
    Image.fromarray(skimage.data.chelsea()).resize((90, 60)).save(d / "sub" / "chelsea.png")
    return d


@pytest.fixture
def style_png(tmp_path: Path) -> Path:
    import skimage.data

    p = tmp_path / "style.png"
    Image.fromarray(skimage.data.immunohistochemistry()).resize((64, 64)).save(p)
    return p


def rgb_noise(h: int, w: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))
