"""How long a training child takes from its start to its first step written, started cold (a
new `python -m workers.child`, as GPU and DDP children still are) and warm (forked by
workers/fork_server.py, as every CPU child of one process is), with the CPU it used.

    .venv/bin/python scripts/child_start_bench.py [--repeats 3]

Prints a table; the warm rows exclude the fork server's own start (once per worker process),
which is printed on its own line.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.core import protocol
from workers import child_process

NET = {"size": 32, "batch": 1, "steps": 10_000, "precision": "32", "decoder": "resize-nearest",
       "downsample": "stride-conv", "filtered_relu": False, "stability_weight": 0.0}


def _first_step(folder: Path, proc) -> float:
    """Seconds until the child has written its first step's progress; then it is stopped."""
    started = time.monotonic()
    while not (folder / protocol.PROGRESS).exists():
        if proc.poll() is not None:
            raise SystemExit(f"the child ended with {proc.poll()}: see {folder / protocol.LOG}")
        time.sleep(0.02)
    seconds = time.monotonic() - started
    child_process.stop_now(proc)
    return seconds


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    spec = protocol.TrainSpec(config=NET, style="ihc", max_pixels=10**7, device="cpu", probe_size=32,
                              preview_size=32)
    rows = {"cold": [], "warm": []}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        child_process.fork_server().ready()
        print(f"fork server started in {time.monotonic() - started:.1f} s (once per worker process)")
        for i in range(args.repeats):
            folder = Path(tmp) / f"cold{i}"
            folder.mkdir()
            protocol.write(folder / protocol.SPEC, spec)
            with open(folder / protocol.LOG, "ab") as log:
                proc = subprocess.Popen([sys.executable, "-m", "workers.child", "train", str(folder / protocol.SPEC)],
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=folder)
            before = _children_cpu()
            rows["cold"].append((_first_step(folder, proc), _children_cpu() - before))
            folder = Path(tmp) / f"warm{i}"
            proc = child_process.spawn("train", spec, folder)
            rows["warm"].append((_first_step(folder, proc), None))
    cold = statistics.median(s for s, _ in rows["cold"])
    print(f"{'start':<6} {'first step s (median)':>22} {'all runs s':>24} {'vs cold':>8}")
    for name, runs in rows.items():
        median = statistics.median(s for s, _ in runs)
        print(f"{name:<6} {median:>22.2f} {' '.join(f'{s:.2f}' for s, _ in runs):>24} {cold / median:>7.1f}x")
    print("cold CPU per child (user + sys, s): " + " ".join(f"{c:.1f}" for _, c in rows["cold"]))


if __name__ == "__main__":
    main()
