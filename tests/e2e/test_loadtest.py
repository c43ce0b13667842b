"""`checkerless loadtest`, small: every submission recorded once, every job final, every
stylisation finished, one submission timed at two sizes of its owner's history, and the
tables' numbers there."""

import json
import os
import subprocess
import sys

import pytest

from tests.e2e.conftest import TINY_JOBS

pytestmark = pytest.mark.slow


def test_a_small_load_test_runs_and_reports(tmp_path):
    """`checkerless loadtest` as a user runs it: its own embedded service, concurrent submissions,
    listings and stylisations. About a minute on a 2-core CPU: a whole service started and its
    training and stylising processes run, which is what the command measures."""
    # The embedded defaults, but the e2e tests' tiny jobs (its own service keeps these settings).
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKERLESS_")} | TINY_JOBS
    p = subprocess.run([sys.executable, "-m", "service.cli", "loadtest", "--submits", "12", "--lists", "6",
                        "--stylizations", "2", "--history", "100", "--timeout", "400", "--json"],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=500)
    assert p.returncode == 0, p.stderr[-3000:]
    result = json.loads(p.stdout)
    # The trained job, a history of 10, 30 timed one at a time, then the burst's 12.
    assert result["jobs_recorded_exactly_once"] is True and result["jobs_final"] == "52/52"
    assert result["stylisations_finished"].startswith("2/2")
    assert set(result["rows"]) == {"submit jobs", "list jobs", "request stylisations"}
    assert all(r["requests_per_s"] > 0 and r["p99_ms"] >= r["p50_ms"] > 0 for r in result["rows"].values())
    # Each burst's CPU, split. The 12 submissions cost the API and the clients more than the
    # kernel's 10 ms tick; the 2 stylisation requests may not show on the API's ticks.
    assert all(min(r["cpu_s"].values()) >= 0 for r in result["rows"].values()), result["rows"]
    submits = result["rows"]["submit jobs"]["cpu_s"]
    assert submits["api"] > 0 and submits["clients"] > 0, result["rows"]
    alone = result["one_submission_at_a_time"]
    assert [r["owner_jobs"] for r in alone] == [10, 100] and all(r["p99_ms"] >= r["p50_ms"] > 0 for r in alone)
    assert list(tmp_path.iterdir()) == []  # its server's data lived in a temporary folder, now gone
