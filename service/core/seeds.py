"""An experiment over several seeds: which seeds it trains, and what its measures say once
every seed has run, as a mean and a 95% interval per variant.

A variant trained once tells nothing about the spread a new seed would give: two variants a
few tenths of a dB apart may swap places with the next seed. So an experiment may train each
variant once per seed (everything else equal: seed + 0, seed + 1, ...), and each measure of the
finished jobs (the probe's last row: artifact_p2/p4/p8, eq_t1..eq_t4, style_distance,
content_distance; and the final loss) is reported per variant as its mean and the two-sided
95% Student-t interval of that mean over the seeds:

    mean ± t(0.975, n - 1) * s / sqrt(n)        s: the sample standard deviation (n - 1)

With one seed there is no interval. Two variants are called different on a measure only where
their intervals do not overlap (a conservative reading: non-overlapping 95% intervals mean a
difference well beyond the 5% level; overlapping ones do not prove the variants equal).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from service.core.records import JobRecord, JobState

MAX_SEEDS = 8  # seeds per experiment: each is one job per variant, and every job counts in quotas

# t(0.975, df) for df = 1 .. MAX_SEEDS - 1: the two-sided 95% quantiles of Student's t
# (scipy.stats.t.ppf(0.975, df), to 4 decimals; tests/service/test_seeds.py checks them).
T_975 = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 5: 2.5706, 6: 2.4469, 7: 2.3646}


def seeds_for(seed: int, count: int) -> list[int]:
    """The seeds an experiment trains: `seed`, then the next count - 1 integers."""
    if not 1 <= count <= MAX_SEEDS:
        raise ValueError(f"seeds must be between 1 and {MAX_SEEDS}, got {count}")
    return [seed + i for i in range(count)]


def interval(values: list[float]) -> dict:
    """{"mean", "low", "high", "n"} of the values; low and high are None for fewer than two."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return {"mean": mean, "low": None, "high": None, "n": n}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = T_975[n - 1] * sd / math.sqrt(n)
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": n}


def final_measures(record: JobRecord) -> dict[str, float] | None:
    """A finished job's measures: the probe's last row and the last step's loss; None until
    it has succeeded (a running job's latest values are not its result)."""
    if record.state != JobState.succeeded:
        return None
    out = {k: v for k, v in record.artifacts.items() if isinstance(v, (int, float))}
    if isinstance(record.losses.get("loss"), (int, float)):
        out["loss"] = record.losses["loss"]
    return out


def summarize(records: Iterable[JobRecord]) -> dict[str, dict]:
    """Per measure, its interval over the succeeded jobs that have it, in the probe's order."""
    finals = [f for f in map(final_measures, records) if f]
    names = list(dict.fromkeys(k for f in finals for k in f))
    return {k: interval([f[k] for f in finals if k in f]) for k in names}


def separated(a: dict, b: dict) -> bool:
    """True where both intervals exist and do not overlap: the one test of a difference."""
    if a["low"] is None or b["low"] is None:
        return False
    return a["high"] < b["low"] or b["high"] < a["low"]


def differences(summaries: list[tuple[str, dict[str, dict]]]) -> list[dict]:
    """For each pair of variants (label, summary) and each measure both have an interval of:
    {"a", "b", "measure", "differ"}; differ is True where the intervals do not overlap."""
    out = []
    for i, (a, sa) in enumerate(summaries):
        for b, sb in summaries[i + 1:]:
            for measure in sa:
                if measure in sb and sa[measure]["low"] is not None and sb[measure]["low"] is not None:
                    out.append({"a": a, "b": b, "measure": measure, "differ": separated(sa[measure], sb[measure])})
    return out
