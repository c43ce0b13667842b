"""The training child (`python -m workers.child train SPEC.json`) as its supervisor runs it."""

import dataclasses
import subprocess
import sys
from pathlib import Path

from models.config import TrainConfig
from models.training import train
from service.core import protocol
from tests.models.test_training import TINY

ROOT = Path(__file__).resolve().parents[2]


def test_resuming_a_checkpoint_with_no_steps_left_reports_where_it_started(tmp_path, vgg19):
    """An earlier attempt trained every step, then lost its bookkeeping: the next attempt only
    writes the outputs, and its progress still says it started from the checkpoint's step (the
    record's resumed_from_step), where no training callback runs to say so."""
    config = TrainConfig(**TINY, steps=2, seed=1)
    done = train(config, out_dir=tmp_path / "earlier", style="ihc", progress=False, loss_network=vgg19)
    folder = tmp_path / "attempt"
    folder.mkdir()
    spec = protocol.TrainSpec(config=config.to_dict(), style="ihc", max_pixels=10**6, device="cpu",
                              preview_size=32, resume=str(done.checkpoint))
    protocol.write(folder / "spec.json", spec)
    p = subprocess.run([sys.executable, "-m", "workers.child", "train", str(folder / "spec.json")],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == protocol.EXIT_OK, p.stderr[-3000:]
    result = protocol.read(folder / protocol.RESULT, protocol.TrainResult)
    assert (result.step, result.steps, result.seconds) == (2, 2, 0.0) and Path(result.preview).exists()
    progress = protocol.read(folder / protocol.PROGRESS, protocol.TrainProgress)
    assert dataclasses.astuple(progress)[:3] == (2, 2, 2)  # step, steps, start_step
    assert (progress.losses, progress.precision) == ({}, "")  # nothing of the record's overwritten
