"""`checkerless bench --job-path`, small: a job through a service of its own against the bare
step of the network it trains, and where the job's time per step went."""

import json
import os
import subprocess
import sys

import pytest

from tests.e2e.conftest import TINY_JOBS

pytestmark = pytest.mark.slow


def test_a_small_job_path_bench_runs_and_reports(tmp_path):
    # The embedded defaults, but the e2e tests' tiny probe and preview (its own service keeps these).
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKERLESS_")} | TINY_JOBS
    p = subprocess.run([sys.executable, "-m", "service.cli", "bench", "--job-path", "--size", "32", "--batch", "1",
                        "--job-steps", "5", "--steps", "2", "--precision", "32", "--json"],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    result = json.loads(p.stdout)
    assert result["trained_precision"] == "32-true" and result["precision"] == "32", result
    rows = {r["measure"]: r for r in result["rows"]}
    bare, job = rows["bare step"], rows["job"]
    assert bare["of_bare"] == 1.0 and bare["images_s"] == pytest.approx(1 / bare["s_per_step"])
    assert job["of_bare"] == pytest.approx(bare["s_per_step"] / job["s_per_step"])
    t = result["timing"]
    assert t["steps"] == 3, t  # steps 3 to 5: the first two are the job's warm-up
    shares = [rows[f"job: {name}"]["share"] for name in ("step", "probe", "checkpoint", "other")]
    assert sum(shares) == pytest.approx(1.0) and shares[0] > 0, rows
    assert list(tmp_path.iterdir()) == []  # its server's data lived in a temporary folder, now gone

