"""`checkerless bench --end-to-end`: `checkerless train` as a user runs it, as whole processes,
against the pytorch/examples recipe run the same way (models/reference.py). The steady-state
step is the marginal time per step between a short and a long run, so start-up (imports,
loading, compiling) cancels out; it is reported on its own, since it matters for a job's start."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class EndToEndRow:
    variant: str
    short_s: float  # median wall time of the short run
    long_s: float
    step_s: float  # (long - short) / (long steps - short steps)
    startup_s: float  # short_s minus its steps at the steady rate
    speedup: float  # the reference's step_s / this step_s

    def as_dict(self) -> dict:
        return asdict(self)


def _train_command(steps: int, size: int, batch: int, compile: str, precision: str, out: str) -> list[str]:
    return [sys.executable, "-m", "service.cli", "train", "brick", "--steps", str(steps), "--size", str(size),
            "--batch", str(batch), "--device", "cpu", "--compile", compile, "--precision", precision, "--out", out,
            "--json"]


def end_to_end(*, short: int = 8, long: int = 24, size: int = 128, batch: int = 4, repeats: int = 2,
               compile_variants: tuple[str, ...] = ("off", "on"), precision: str = "auto") -> list[EndToEndRow]:
    """`precision`: what `checkerless train` runs in (auto: as a user's run would); the
    reference recipe is fp32 whatever it is."""
    variants = {"reference": lambda n, out: [sys.executable, "-m", "models.reference", str(n), str(size), str(batch)]}
    for c in compile_variants:
        variants[f"train --compile {c}"] = (lambda c: lambda n, out: _train_command(n, size, batch, c, precision, out))(c)
    times: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):  # alternated, so a busy moment touches every variant alike
            for steps in (short, long):
                for name, command in variants.items():
                    t = time.perf_counter()
                    p = subprocess.run(command(steps, f"{tmp}/{r}-{steps}"), capture_output=True, text=True)
                    if p.returncode != 0:
                        raise RuntimeError(f"{name} failed: {p.stderr.strip().splitlines()[-1:]}")
                    times.setdefault((name, steps), []).append(time.perf_counter() - t)
    rows = []
    for name in variants:
        s, lg = statistics.median(times[(name, short)]), statistics.median(times[(name, long)])
        step = (lg - s) / (long - short)
        rows.append((name, s, lg, step, s - short * step))
    base = rows[0][3]
    return [EndToEndRow(n, s, lg, st, su, base / st) for n, s, lg, st, su in rows]
