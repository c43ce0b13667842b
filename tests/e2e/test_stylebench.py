"""`checkerless stylize-bench`, small: the bare forward, the cold and warm request-to-PNG
latencies with their ratios, and where the warm requests' time went."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_a_small_stylize_bench_runs_and_reports(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKERLESS_")}
    p = subprocess.run([sys.executable, "-m", "service.cli", "stylize-bench", "--size", "64", "-n", "3",
                        "--timeout", "300", "--json"],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=400)
    assert p.returncode == 0, p.stderr[-3000:]
    result = json.loads(p.stdout)
    bare, cold, warm = result["rows"]
    assert bare["ratio"] == 1.0 and bare["ms"] > 0
    assert cold["ms"] > 0 and warm["ms"] > 0 and warm["ratio"] == pytest.approx(warm["ms"] / bare["ms"], rel=0.01)
    parts = result["warm_breakdown_ms"]
    assert parts["total"] == warm["ms"]
    assert parts["stylise server: handed -> answered"] > 0 and parts["    forward"] > 0  # every stretch was seen
    assert list(tmp_path.iterdir()) == []  # its server's data lived in a temporary folder, now gone
