"""The layers hold (import-linter's contracts in pyproject.toml), and the API never needs torch."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    p = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=ROOT,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert "6 kept, 0 broken" in p.stdout


def test_the_api_and_the_job_core_import_no_torch():
    code = ("import sys, service.api.main, service.core.stores, service.core.submit, workers.train_task, workers.stylize_task, workers.tasks; "
            "print('torch' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == "False", p.stderr


def test_stylising_imports_nothing_of_training():
    """The inference path (stylise, video, export, the warm stylise server) loads no Lightning and
    no training code: a stylise worker starts without them (the contract above checks the
    imports as written; this, what a process loads)."""
    code = ("import sys, models.stylize, models.video, models.export, workers.warm_stylize, workers.stylize_server; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pytorch_lightning', 'lightning') "
            "or m in ('models.training', 'models.lightning_module', 'models.callbacks', 'models.data')))")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == "[]", (p.stdout, p.stderr)
