"""`checkerless stylize-bench`, small: the bare forward, the cold and warm request-to-PNG
latencies with their ratios, and where the warm requests' time went."""

import json
import os
import subprocess
import sys

import pytest

from tests.e2e.conftest import TINY_JOBS

pytestmark = pytest.mark.slow


def test_a_small_stylize_bench_runs_and_reports(tmp_path):
    # The embedded defaults, but the e2e tests' tiny jobs (its own service keeps these settings).
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKERLESS_")} | TINY_JOBS
    p = subprocess.run([sys.executable, "-m", "service.cli", "stylize-bench", "--size", "64", "-n", "3",
                        "--timeout", "300", "--json"],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=400)
    assert p.returncode == 0, p.stderr[-3000:]
    result = json.loads(p.stdout)
    bare, cold, warm = result["rows"]
    assert bare["ratio"] == 1.0 and bare["ms"] > 0, result
    # (the ratios come from the unrounded times: a 64 px forward is a few ms, rounded to 0.1)
    assert cold["ms"] > 0 and warm["ms"] > 0 and warm["ratio"] == pytest.approx(warm["ms"] / bare["ms"], rel=0.05), result
    parts = result["warm_breakdown_ms"]
    assert parts["total"] == warm["ms"], result
    assert parts.get("stylise server: handed -> answered", 0) > 0 and parts.get("    forward", 0) > 0, result
    assert list(tmp_path.iterdir()) == []  # its server's data lived in a temporary folder, now gone
