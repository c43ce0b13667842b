"""The API's memory stays flat while an archive streams in: scripts/upload_memory.py sends a
64 MiB tar through a real uvicorn process, on the local store and on S3 (moto's server, the
multipart path), and the API's peak RSS grows by far less than the archive."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.e2e.conftest import ROOT

MiB = 1024 * 1024
SIZE = 64 * MiB
BOUND = 40 * MiB  # S3 holds one part (CHECKERLESS_UPLOAD_PART_BYTES, 16 MiB) at a time; the local store a chunk


def test_a_streamed_archive_does_not_grow_the_apis_memory_with_its_size():
    p = subprocess.run([sys.executable, "scripts/upload_memory.py", "--size", "64M", "--store", "local",
                        "--store", "moto", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    rows = json.loads(p.stdout)
    assert [r["store"] for r in rows] == ["local", "moto"]
    for r in rows:
        assert r["bytes_stored"] == r["bytes_sent"] >= SIZE, r
        assert r["growth"] < BOUND, f"the API's RSS grew by {r['growth'] / MiB:.1f} MiB on {r['store']}: {r}"
