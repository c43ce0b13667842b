"""One row of the training probe (models/callbacks.py ArtifactProbe): what it measured of the
network at one step. The one definition of its shape: the run's result, the child's progress
and result files (service/core/protocol.py), the job record's artifact_curve and the pages all
read these names. No torch here: the job core reads rows without loading it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


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
