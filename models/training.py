"""One entry point for a training run, used by the CLI and the worker alike."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytorch_lightning as pl
import torch

from models.callbacks import ArtifactProbe, LossHistory, LossProgress, PeriodicCheckpoint, PhaseTimer, StopWhen
from models.checkpoint import read_checkpoint
from models.config import TrainConfig, per_device_batch
from models.data import BUILTIN_LABEL, ContentDataModule, ContentSet, load_styles
from models.lightning_module import StyleTransferModule, style_png_from_image
from models.hardware import resolve_accelerator, resolve_precision
from models.loss_network import LossNetwork
from models.probe_row import ProbeRow
from models.probe_row import probe_size as default_probe_size

log = logging.getLogger(__name__)
CHECKPOINT_NAME = "last.ckpt"


@dataclass
class RunResult:
    checkpoint: Path
    step: int
    steps: int
    stopped: bool  # stopped before reaching `steps` (Ctrl-C, cancel)
    seconds: float
    losses: list[dict[str, float]]  # one row per step of this run
    artifacts: list[ProbeRow]  # the probe's rows (models/callbacks.py ArtifactProbe)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # unreadable content files
    rank: int = 0  # this process's DDP rank: rank 0 alone does the run's once-only work (outputs, reports)
    timing: dict[str, float] | None = None  # where the steps' time went (models/callbacks.py PhaseTimer)

    @property
    def final(self) -> dict[str, float]:
        return self.losses[-1] if self.losses else {}


# Steps between the probe's measurements (models/callbacks.py ArtifactProbe), besides the
# first and the last step.
PROBE_EVERY = 25
DATA_WORKERS = min(4, os.cpu_count() or 1)  # DataLoader processes where decoding goes off the training process


@dataclass(frozen=True)
class Speed:
    """How a run executes, never what it computes: the same losses within float rounding."""

    compiled: bool  # torch.compile of the loss step
    precision: str  # Lightning's: "32-true", or "bf16-mixed" (autocast; Grams, losses, Adam stay fp32)
    benchmark: bool  # cudnn.benchmark: fixed crop sizes, so the fastest kernels are kept
    num_workers: int  # DataLoader processes decoding and cropping off the training process
    pin_memory: bool

    @classmethod
    def plan(cls, accelerator: str, *, steps_left: int, compile: str = "auto", num_workers: int | None = None,
             streamed: bool = False, precision: str = "auto") -> Speed:
        if compile not in ("auto", "on", "off"):
            raise ValueError(f"compile must be auto, on or off, not {compile!r}")
        gpu = accelerator == "gpu"
        # `auto` compiles on a GPU only. On the CPU today's network compiled was slower than
        # eager once warm (an AMD EPYC with AVX512_BF16: 0.88x in fp32, 0.79x in bf16;
        # docs/performance.md), and a cold compile costs minutes at a job's start.
        compiled = compile == "on" or (compile == "auto" and gpu)
        # Decoding goes off the training process on a GPU, and wherever images arrive over the
        # network (a content set streamed from the store): there a worker waits on the store.
        workers = num_workers if num_workers is not None else (DATA_WORKERS if gpu or streamed else 0)
        bf16 = resolve_precision(precision, accelerator) == "bf16"  # models/hardware.py decides from the machine
        return cls(compiled=compiled, precision="bf16-mixed" if bf16 else "32-true", benchmark=gpu,
                   num_workers=workers, pin_memory=gpu)


def train(
    config: TrainConfig | None = None,
    *,
    out_dir: str | Path,
    style: str | Path | Sequence[str | Path] | None = None,
    content: ContentSet | str | Path | None = None,
    resume: str | Path | None = None,
    steps: int | None = None,
    device: str = "auto",
    devices: int = 1,
    ddp: bool | None = None,
    num_workers: int | None = None,
    compile: str = "auto",
    progress: bool = True,
    should_stop: Callable[[], bool] = lambda: False,
    on_checkpoint: Callable[[Path, int], None] | None = None,
    callbacks: Sequence[pl.Callback] = (),
    probe_every: int = PROBE_EVERY,
    probe_size: int | None = None,
    loss_network: LossNetwork | None = None,
) -> RunResult:
    """Train a style (or resume one from a checkpoint) and write `out_dir/last.ckpt`.

    `style` is one style (a file or a built-in name) or a list of up to MAX_STYLES: several
    train one network with conditional instance norm, each step on the style
    `models.data.style_for_step(seed, step, n)` names.

    On resume the settings, style and content come from the checkpoint; `steps` may raise
    the total to train further. Data order and weights continue exactly where they stopped.

    `devices` > 1 runs Lightning's DDP: the command that called this is started again as
    ranks 1..N-1 (each returns here with its own `rank`), and each rank trains on its slice
    of the same global batch, so the losses and weights are those of one process within float
    rounding, and a checkpoint resumes with any number of devices. `ddp=True` takes the DDP
    path on one device too (a check of that path on a one-GPU machine).

    The artifact probe (models/callbacks.py ArtifactProbe) measures the network every
    `probe_every` steps on the panel photos at `probe_size` pixels (None: models/probe_row.py probe_size());
    a smaller probe costs less at every probe, and measures less of the picture.
    """
    out = Path(out_dir)
    ckpt_path: Path | None = None
    start_step = 0
    if resume is not None:
        info, _ = read_checkpoint(resume)
        start_step = info.step
        config = info.config if steps is None else info.config.replace(steps=steps)
        styles = list(zip(info.styles, info.style_pngs))
        if content is None and info.content != BUILTIN_LABEL:
            if not Path(info.content).is_dir():
                raise ValueError(f"{resume} was trained on {info.content}, which is not a folder here: "
                                 "give the content images to go on with")
            content = info.content
        ckpt_path = info.path
        if info.step >= config.steps:
            raise ValueError(f"{resume} is already at step {info.step} of {config.steps}; pass more steps to go on")
    else:
        if config is None or style is None:
            raise ValueError("a new run needs a config and a style image")
        if steps is not None:
            config = config.replace(steps=steps)
        styles = [(name, style_png_from_image(img)) for name, img in load_styles(style)]
    content_set = content if isinstance(content, ContentSet) else ContentSet.resolve(content)

    per_device_batch(config.batch, devices)  # before any rank starts: a clear error, not N of them
    use_ddp = devices > 1 if ddp is None else ddp
    accelerator = resolve_accelerator(device)
    if accelerator == "gpu" and devices > torch.cuda.device_count():
        raise ValueError(f"{devices} devices were asked for, but this machine has {torch.cuda.device_count()} GPU(s)")
    speed = Speed.plan(accelerator, steps_left=config.steps - start_step, compile=compile, num_workers=num_workers,
                       streamed=content_set.streamed, precision=config.precision)
    pl.seed_everything(config.seed, workers=True, verbose=False)
    module = StyleTransferModule(config, styles=styles, content_label=content_set.label, loss_network=loss_network,
                                 compiled=speed.compiled, precision=speed.precision)
    data = ContentDataModule(content_set, size=config.size, batch=config.batch, seed=config.seed,
                             num_workers=speed.num_workers, pin_memory=speed.pin_memory)
    history, stopper, timer = LossHistory(), StopWhen(should_stop), PhaseTimer()
    from models.preview import PANEL, PROBE_SCORED, probe_batch

    probe = ArtifactProbe(probe_batch(probe_size or default_probe_size()), every=probe_every,
                          scored=PANEL.index(PROBE_SCORED), timer=timer)
    saver = PeriodicCheckpoint(out / CHECKPOINT_NAME, every=config.checkpoint_every, on_saved=on_checkpoint,
                               timer=timer)
    bar = [LossProgress()] if progress else []
    trainer = pl.Trainer(
        accelerator=accelerator, devices=devices, strategy="ddp" if use_ddp else "auto",
        max_steps=config.steps, max_epochs=-1,
        precision=speed.precision, benchmark=speed.benchmark,
        logger=pl.loggers.CSVLogger(out, name="logs"),  # logs/version_N: a resumed run adds one
        log_every_n_steps=config.log_every, callbacks=[timer, history, probe, stopper, saver, *bar, *callbacks],
        enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=False,
        num_sanity_val_steps=0, limit_val_batches=0, default_root_dir=out,
    )
    started = time.perf_counter()
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    return RunResult(
        checkpoint=saver.path, step=trainer.global_step, steps=config.steps,
        stopped=trainer.global_step < config.steps, seconds=time.perf_counter() - started,
        losses=history.rows, artifacts=probe.rows, skipped=content_set.skipped, rank=trainer.global_rank,
        timing=timer.timing(),
    )
