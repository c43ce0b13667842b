"""Callbacks of the training child: they talk to the supervising task through files in the
run folder (the child never touches the store or the broker)."""

from __future__ import annotations

import time
from pathlib import Path

import pytorch_lightning as pl

from models.callbacks import ArtifactProbe
from service.core import protocol


class ProgressFile(pl.Callback):
    """Writes step, total, latest losses, latest probe scores and speed after every step; under
    DDP on rank 0 only (the losses it writes are already the mean over the ranks)."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / protocol.PROGRESS
        self.start_step = None
        self.started = time.perf_counter()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        self.start_step = trainer.global_step
        self.started = time.perf_counter()
        self._write(trainer)

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        if trainer.is_global_zero:
            self._write(trainer)

    def _write(self, trainer: pl.Trainer) -> None:
        done = trainer.global_step - (self.start_step or 0)
        m = trainer.callback_metrics
        probe = next((c for c in trainer.callbacks if isinstance(c, ArtifactProbe)), None)
        protocol.write(self.path, protocol.TrainProgress(
            step=trainer.global_step, steps=trainer.max_steps, start_step=self.start_step,
            losses={k.removeprefix("train/"): float(v) for k, v in m.items() if k.startswith("train/")},
            probe=probe.rows[-1] if probe and probe.rows else None,
            seconds_per_step=(time.perf_counter() - self.started) / done if done else None,
            precision=trainer.precision,
        ))


def stop_requested(folder: Path) -> bool:
    return (Path(folder) / protocol.STOP).exists()
