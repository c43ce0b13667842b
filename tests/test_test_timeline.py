"""The suite's own timing tools: the timeline tests/conftest.py writes, scripts/test_timeline.py
reading it, and LONGEST_FIRST naming files that exist."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import LONGEST_FIRST

ROOT = Path(__file__).resolve().parents[1]


def test_longest_first_names_test_files_that_exist():
    assert LONGEST_FIRST and len(set(LONGEST_FIRST)) == len(LONGEST_FIRST)
    assert [f for f in LONGEST_FIRST if not (ROOT / f).is_file()] == []


def test_a_run_writes_its_timeline_and_the_script_ranks_its_files(tmp_path):
    (tmp_path / "test_short.py").write_text("def test_a():\n    pass\n")
    (tmp_path / "test_long.py").write_text("import time\n\ndef test_b():\n    time.sleep(0.3)\n\ndef test_c():\n    pass\n")
    timeline = tmp_path / "timeline.jsonl"
    env = {**os.environ, "CHECKERLESS_TEST_TIMELINE": str(timeline)}
    # tests/conftest.py as a plugin: the two files lie outside tests/, where it would not apply.
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
                        "--rootdir", str(tmp_path), str(tmp_path)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    rows = [json.loads(line) for line in timeline.read_text().splitlines()]
    assert sorted(r["test"].rsplit("::", 1)[1] for r in rows) == ["test_a", "test_b", "test_c"]
    assert all(r["end"] >= r["start"] and r["cpu_s"] >= 0 for r in rows)
    p = subprocess.run([sys.executable, "scripts/test_timeline.py", str(timeline)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "3 tests in 2 files" in p.stdout and "workers busy per 30 s: 0:" in p.stdout
    assert "files of 30 s or more, longest first: []" in p.stdout  # neither file reaches 30 s
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    p = subprocess.run([sys.executable, "scripts/test_timeline.py", str(empty)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "no tests recorded" in p.stderr
