"""scripts/gpu-bench.sh, in its dry mode: every step of the GPU benchmark, on the CPU, tiny."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_bench_script_runs_dry_on_the_cpu(tmp_path):
    """Every step of the script, as the GPU loan will run it (seven processes that each import
    torch, one a whole service; the dry run trains and exports the plain network, the script says why): the loan is
    too short to find a broken step there."""
    p = subprocess.run(["bash", "scripts/gpu-bench.sh", "--dry-run"], cwd=ROOT, capture_output=True, text=True,
                       timeout=900, env={**os.environ, "OUT": str(tmp_path)})
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    reference = (tmp_path / "reference.txt").read_text()
    assert "reference" in reference and "infer 64px" in reference and "train 32px x2" in reference
    # GFLOP/s against the fp32 peak, and the bf16 peak where the CPU has bf16 matrix arithmetic
    flags = Path("/proc/cpuinfo").read_text().split()
    bf16 = "amx_bf16" in flags or "avx512_bf16" in flags
    assert "of fp32 peak" in reference and ("of bf16 peak" in reference) == bf16, reference
    assert ("AMX" in reference) == ("amx_bf16" in flags), reference
    assert "tiles of 64 px" in (tmp_path / "tiling.txt").read_text()
    job_path = " ".join((tmp_path / "job-path.txt").read_text().split())  # the title wraps where the CPU's name ends
    assert "job: probe" in job_path and "bare step" in job_path and "a job of 5 steps" in job_path, job_path
    for fmt in ("onnx", "torchscript"):
        assert (tmp_path / f"net.{fmt}").stat().st_size > 100_000
    assert "device: cpu" in (tmp_path / "device.txt").read_text()
