"""Lightning callbacks, one job each."""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from models.probe_row import ProbeRow


class LossHistory(pl.Callback):
    """Keeps every step's logged losses in memory: the loss curve of the run."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args) -> None:
        m = trainer.callback_metrics
        row = {k.removeprefix("train/"): float(v) for k, v in m.items() if k.startswith("train/")}
        self.rows.append({"step": trainer.global_step, **row})


class PhaseTimer(pl.Callback):
    """Where a run's time goes between steps: the training step itself (on_train_batch_start to
    on_train_batch_end: forward, backward, optimizer), the phases other callbacks time with
    `phase` (the probe, checkpoints), and the rest of the loop (the next batch, logging, the
    losses read back, the progress file). Counted over steps `skip`+1 to the last, from the
    end of step `skip` (so a job's first steps, which pick kernels and fill caches, are out,
    as a bench's warm-up is; a resumed run's from where it began) to the end of the last step: each counted step is its own
    computation plus what ran after the step before it. Must be the first callback, so its
    batch end comes before the others' work. What runs after the loop (the final checkpoint,
    preview and exports) is not a step's cost and is not counted."""

    def __init__(self, skip: int = 2):
        self.skip = skip
        self.steps = 0
        self.loop_s = 0.0
        self.spent: dict[str, float] = defaultdict(float)
        self._counting = False
        self._began = self._window = 0.0
        self._first = 0  # the step this run began at (a resumed one: its checkpoint's)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            if self._counting:
                self.spent[name] += time.perf_counter() - began

    def on_train_start(self, trainer: pl.Trainer, *args) -> None:
        self._first = trainer.global_step

    def on_train_batch_start(self, *args) -> None:
        self._began = time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        now = time.perf_counter()
        if self._counting:
            self.spent["step"] += now - self._began
            self.steps += 1
            self.loop_s = now - self._window
        if trainer.global_step == self._first + self.skip:
            self._counting, self._window = True, now
        if trainer.global_step >= trainer.max_steps:
            self._counting = False

    def timing(self) -> dict[str, float] | None:
        """Seconds per phase over the counted steps, "other" the rest of the loop; None when
        the run had no step past `skip`."""
        if not self.steps:
            return None
        known = {"step": 0.0, "probe": 0.0, "checkpoint": 0.0, **self.spent}
        return {"steps": self.steps, "loop_s": self.loop_s, **{f"{k}_s": v for k, v in known.items()},
                "other_s": max(0.0, self.loop_s - sum(known.values()))}


class StopWhen(pl.Callback):
    """Stops training cleanly (Lightning finishes the step and returns from fit) once
    `should_stop()` is true: Ctrl-C in the CLI, a cancel flag in the worker. Under DDP the
    ranks stop together, after the step where any of them saw it (a rank that stopped alone
    would leave the others waiting for it in the next step's gradient exchange)."""

    def __init__(self, should_stop: Callable[[], bool]):
        self.should_stop = should_stop
        self.stopped = False

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        if trainer.strategy.reduce_boolean_decision(bool(self.should_stop()), all=False):
            self.stopped = True
            trainer.should_stop = True


class PeriodicCheckpoint(pl.Callback):
    """Writes `path` every `every` steps and when training ends (finished or stopped), then
    calls `on_saved(path, step)` (the worker uploads from there). The file is written beside
    and renamed, so a crash mid-write never leaves a broken checkpoint behind. Under DDP every
    rank takes part in the save (Lightning writes on rank 0 and waits for all); rank 0 alone
    renames it and calls `on_saved`."""

    def __init__(self, path: str | Path, *, every: int, on_saved: Callable[[Path, int], None] | None = None,
                 timer: PhaseTimer | None = None):
        self.path = Path(path)
        self.every = every
        self.on_saved = on_saved
        self.timer = timer or PhaseTimer()
        self._last_saved = -1

    def save(self, trainer: pl.Trainer) -> None:
        step = trainer.global_step
        if step == self._last_saved or step == 0:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        trainer.save_checkpoint(tmp, weights_only=False)  # a full checkpoint: optimizer and loops too
        self._last_saved = step
        if not trainer.is_global_zero:
            return
        os.replace(tmp, self.path)
        if self.on_saved:
            self.on_saved(self.path, step)

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        if trainer.global_step % self.every == 0:
            with self.timer.phase("checkpoint"):
                self.save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.save(trainer)


class LossProgress(pl.Callback):
    """A rich progress bar over the run's steps (not epochs: the data stream is endless)
    showing the latest losses, rate and time left; on rank 0 only under DDP."""

    def __init__(self, console=None) -> None:
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.progress = None
        self.task = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        if not trainer.is_global_zero:
            return
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[losses]}"),
            console=self.console,
        )
        self.progress.start()
        self.task = self.progress.add_task(
            f"train {pl_module.config.decoder}", total=trainer.max_steps,
            completed=trainer.global_step, losses="",
        )

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        if self.progress is None:
            return
        m = trainer.callback_metrics
        losses = " ".join(f"{k.removeprefix('train/')} {float(v):.3g}" for k, v in m.items() if k.startswith("train/"))
        self.progress.update(self.task, completed=trainer.global_step, losses=losses)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.progress:
            self.progress.stop()

    on_exception = lambda self, trainer, pl_module, exc: self.on_train_end(trainer, pl_module)  # noqa: E731


class ArtifactProbe(pl.Callback):
    """Measures the network on a fixed batch of photos (models/preview.py probe_batch: the
    panel at 128 px) at the start, before any training, every `every` steps and at the end,
    so a run has curves of its artifacts and of its quality, not only of its losses. One
    forward of the batch, no grad; then the yardstick (models/quality.py: one fixed VGG19,
    whatever the run trains against) over the outputs for the style and content distances,
    averaged over the batch; the period-2/4/8 checkerboard scores of one photo's output,
    `photos[scored]` (dB, on the pixels a PNG holds); and the shift equivariance of the
    network on that photo (models/artifacts/equivariance.py, EQ-T at shifts 1 to 4, dB).

    Rows (models/probe_row.py ProbeRow) are kept in `rows` and sent to the logger as
    probe/<name>. Under DDP only rank 0 measures.

    A network of several styles is measured with each style selected in turn, against that
    style's own Grams; the row holds the mean over the styles under the same keys (so curves
    of one- and many-style runs read alike), and the training selection is put back."""

    def __init__(self, photos: torch.Tensor, *, every: int, scored: int = 0, timer: PhaseTimer | None = None):
        self.photos = photos  # (N, 3, H, W) 0..255
        self.every = every
        self.scored = scored
        self.timer = timer or PhaseTimer()
        self.rows: list[ProbeRow] = []
        self._grams: list[dict[str, torch.Tensor]] = []  # each style's Grams by the yardstick

    def _yardstick(self, pl_module: pl.LightningModule):
        from models.quality import is_yardstick, style_grams, yardstick

        net = pl_module.loss_net if is_yardstick(pl_module.loss_net) else yardstick()
        net.to(pl_module.device)
        if not self._grams:
            self._grams = [style_grams(net, image.to(pl_module.device)) for image in pl_module.style_images]
        return net

    def measure(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from models.artifacts import checkerboard_score
        from models.artifacts.equivariance import shift_equivariance
        from models.images import from_tensor
        from models.quality import distances

        step = trainer.global_step
        if not trainer.is_global_zero or (self.rows and self.rows[-1].step == step):
            return
        photos = self.photos.to(pl_module.device)
        net = pl_module.net
        measure_net = self._yardstick(pl_module)
        was = net.selected
        per_style = []
        for i, grams in enumerate(self._grams):
            if net.styles > 1:
                net.select_style(i)
            with torch.no_grad():
                out = net(photos)
            d = distances(measure_net, out, photos, grams)
            s = checkerboard_score(np.asarray(from_tensor(out[self.scored])))  # the pixels a PNG would hold
            eq = shift_equivariance(net, photos[self.scored:self.scored + 1])
            per_style.append({**{f"artifact_p{p}": v for p, v in s.items()},
                              **{f"eq_t{k}": v for k, v in eq.items()},
                              **{k: float(v.mean()) for k, v in d.items()}})
        if net.styles > 1:
            net.select_style(list(was))
        row = ProbeRow(step=step, **{k: float(np.mean([r[k] for r in per_style])) for k in per_style[0]})
        self.rows.append(row)
        if trainer.logger is not None:
            trainer.logger.log_metrics({f"probe/{k}": v for k, v in row.measures().items()}, step=step)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.measure(trainer, pl_module)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args) -> None:
        if trainer.global_step % self.every == 0:
            with self.timer.phase("probe"):
                self.measure(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.measure(trainer, pl_module)
