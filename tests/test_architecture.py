"""The layers hold (import-linter's contracts in pyproject.toml), and the API never needs torch."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    p = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=ROOT,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert "4 kept, 0 broken" in p.stdout


def test_the_api_and_the_job_core_import_no_torch():
    code = ("import sys, service.api.main, service.core.jobs, service.core.submit, workers.supervisor, workers.tasks; "
            "print('torch' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == "False", p.stderr
