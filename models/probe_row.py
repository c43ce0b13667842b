"""The training probe (models/callbacks.py ArtifactProbe): the size of its photos, and one row of
what it measured of the network at one step. The one definition of the row's shape: the run's
result, the child's progress and result files (service/core/protocol.py), the job record's
artifact_curve and the pages all read these names. No torch here: the job core reads rows
without loading it."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

# The probe runs on the panel photos (models/preview.py probe_batch) at this size, square.
PROBE_SIZE = 128
# The operator's probe size, for every training run of the process and its children (the
# service's setting of the same name, service/core/settings.py): a run of a few steps at a
# small size spends most of its time probing at 128 px, so the test suite sets 32.
PROBE_SIZE_ENV, PROBE_SIZE_RANGE = "CHECKERLESS_PROBE_SIZE", (32, 512)


def size_setting(env: str, size_range: tuple[int, int]) -> int | None:
    """An operator's size in pixels from the variable `env`: None where unset. ValueError if
    it is not a whole number of pixels in `size_range` (the probe's and the pictures' sizes)."""
    raw = os.environ.get(env, "").strip()
    if not raw:
        return None
    lo, hi = size_range
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise ValueError(f"{env} must be a whole number of pixels from {lo} to {hi}, not {raw!r}")
    return int(raw)


def probe_size() -> int:
    """The probe's size: CHECKERLESS_PROBE_SIZE where set, else PROBE_SIZE. ValueError if it
    is not a whole number of pixels in PROBE_SIZE_RANGE."""
    size = size_setting(PROBE_SIZE_ENV, PROBE_SIZE_RANGE)
    return PROBE_SIZE if size is None else size


@dataclass(frozen=True)
class ProbeRow:
    step: int
    # The period-2/4/8 checkerboard scores of the scored photo's output (dB above the
    # photos' level: higher is worse; models/artifacts/score.py).
    artifact_p2: float | None = None
    artifact_p4: float | None = None
    artifact_p8: float | None = None
    # Shift equivariance at shifts of 1 to 4 pixels (EQ-T, dB: higher is better;
    # models/artifacts/equivariance.py).
    eq_t1: float | None = None
    eq_t2: float | None = None
    eq_t3: float | None = None
    eq_t4: float | None = None
    # The fixed yardstick's distances over the probe batch (models/quality.py: lower is better).
    style_distance: float | None = None
    content_distance: float | None = None

    # None: not measured (rows of runs from before a measure was probed lack it).

    def to_dict(self) -> dict[str, float]:
        """As stored and served: the measures it has, so an older row stays as it was."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict) -> ProbeRow:
        return cls(**d)

    def measures(self) -> dict[str, float]:
        """The measured values without the step."""
        return {k: v for k, v in self.to_dict().items() if k != "step"}
