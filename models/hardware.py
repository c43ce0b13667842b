"""What the machine offers, decided at run time from the machine itself: the accelerator, and
the arithmetic precision a run uses on it. No Lightning here: stylising imports this too.

Precision: `auto` is bf16 autocast where bf16 matrix arithmetic is in hardware (a CUDA GPU,
or a CPU whose flags name AMX-BF16 or AVX512_BF16, where oneDNN runs convolutions and
matmuls in bf16 with fp32 accumulation) and fp32 elsewhere, where emulated bf16 can be slower
than fp32. Grams, losses and the optimizer state stay fp32 either way (models/losses.py).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

from models.vocabulary import PRECISIONS
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo's names for bf16 matrix units


def resolve_accelerator(device: str) -> str:
    """"cpu" or "gpu" for a device setting: auto, cpu, gpu or cuda."""
    if device == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "gpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or gpu, not {device!r}")
    if device in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ValueError("device gpu was asked for, but this machine has no CUDA GPU")
    return "gpu" if device == "cuda" else device


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux reports them; empty where there is no /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_model() -> str:
    """The CPU's model name, for benchmark tables ("unknown CPU" where it cannot be read)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def cpu_has_bf16_units() -> bool:
    return any(flag in cpu_flags() for flag in CPU_BF16_FLAGS)


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    return precision


def resolve_precision(precision: str, accelerator: str) -> str:
    """"bf16" or "32": what `precision` (auto, 32 or bf16) means on this accelerator."""
    if check_precision(precision) != "auto":
        return precision
    return "bf16" if accelerator == "gpu" or cpu_has_bf16_units() else "32"


def autocast(precision: str, device: torch.device | str):
    """The autocast context for a resolved precision on a device (a no-op context for "32")."""
    device_type = torch.device(device).type
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16")
