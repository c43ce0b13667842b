"""One frozen, validated description of a training run: what the CLI, the API and the
checkpoint all speak. Bad values raise ValueError with a message that says what to fix.
No torch here: the API validates job requests with it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from models.vocabulary import (
    LOSS_NETWORKS,
    LOSS_POOLINGS,
    PRECISIONS,
    STABILITY_SHIFTS,
    decoder_label,
    downsample_label,
    parse_decoder,
    parse_downsample,
)

# Chosen by measurement (docs/training.md, "A first run"): with vgg19, raw losses at init are
# ~1e5 (content) and ~4e6 (style); at style 5e-2 and lr 5e-3 a first run of 150 steps at
# 128 px is visibly stylised and keeps the photo (1e-2 with lr 1e-3 barely showed the style
# after 2,000 steps at 256 px; 0.25 lost the photo). The defaults sweep ("How the defaults were
# chosen") then doubled the style weight: with filtered ReLUs a network takes less style at
# the same weight, and at 1e-1 it takes the old defaults' again, with no lattice. TV is on the
# mean absolute difference.
DEFAULT_WEIGHTS = {"content": 1.0, "style": 1e-1, "tv": 10.0}
DEFAULT_LR = 5e-3  # Adam
MAX_SIZE = 2048
MAX_STEPS = 1_000_000
MAX_BATCH = 256
# The one table of limits: the API schema, the CLI and the web form read it (and the defaults
# from TrainConfig's fields), so a limit is written here only.
LIMITS: dict[str, tuple[int, int]] = {
    "size": (16, MAX_SIZE),
    "steps": (1, MAX_STEPS),
    "batch": (1, MAX_BATCH),
    "seed": (0, 2**32 - 1),
    "checkpoint_every": (1, MAX_STEPS),
    "log_every": (1, MAX_STEPS),
    "style_size": (16, MAX_SIZE),
    "full_res_blocks": (0, 4),
}
MAX_LR = 1.0
# Several styles in one network (conditional instance norm): at most this many style images
# per job, network and checkpoint.
MAX_STYLES = 32
# The stability loss's weight (models/losses.py stability_loss): 0 is off; the upper bound
# keeps a typo from drowning every other term.
MAX_STABILITY_WEIGHT = 1e6
# The low-pass filters' cutoff (TrainConfig.lowpass_cutoff) at least this fraction of the
# Nyquist frequency: lower, the 5-tap phases would pass little but blur.
MIN_LOWPASS_CUTOFF = 0.25
# The stability loss's light noise: Gaussian, this standard deviation on the 0..255 scale
# (about the noise of a video frame's compression).
STABILITY_NOISE_STD = 2.0
# Stylising: an image whose untiled pass would take more than this is run in tiles
# (models/tiling.py); the CLI's --memory-budget and the worker's setting default to it.
STYLIZE_MEMORY_BUDGET_GIB = 2.0


# What a stored config (a checkpoint's) means when it lacks a setting: the behaviour from before
# the setting existed, not today's default, so an old checkpoint loads as the network it was
# (every downsampling kind has the same weights: stride-conv read as blur-stride would load
# silently and compute something else) and resumes with the loss it trained with.
STORED_FALLBACKS = {"downsample": "stride-conv", "loss_pooling": "max", "stability_weight": 0.0,
                    "stability_shift": "one", "full_res_blocks": 0, "filtered_relu": False,
                    "precision": "32", "lowpass_cutoff": 1.0}


@dataclass(frozen=True)
class TrainConfig:
    # The defaults were chosen by scripts/sweep_defaults.py (docs/training.md, "How the defaults
    # were chosen"): a filtered upsampling, an anti-aliased downsampling, filtered ReLUs, their
    # filters cut off below the Nyquist frequency, and the stability loss's shift term against
    # the period-4 texture a network paints on its residual blocks' grid. The sweep's old
    # defaults were resize-nearest, stride-conv, plain ReLUs and no stability term.
    decoder: str = "resize-lowpass"  # one name, or one per stage comma-separated
    size: int = 128  # square crop side in pixels (Johnson: 256)
    steps: int = 200  # optimiser steps (Johnson: ~40k)
    batch: int = 4
    lr: float = DEFAULT_LR
    content_weight: float = DEFAULT_WEIGHTS["content"]
    style_weight: float = DEFAULT_WEIGHTS["style"]
    tv_weight: float = DEFAULT_WEIGHTS["tv"]
    style_size: int | None = None  # shorter side of the style image; None: the crop size
    seed: int = 0
    loss_network: str = "vgg19"
    checkpoint_every: int = 100  # steps between checkpoints (and one at the end)
    log_every: int = 10
    downsample: str = "blur-stride"  # the encoder's two x1/2 stages: one name, or one per stage
    loss_pooling: str = "max"  # the loss network's pooling: "max" (VGG's) or "avg"
    stability_weight: float = 1000.0  # weight of the stability loss (0: off; models/losses.py)
    stability_shift: str = "one"  # which shifts the stability loss asks equivariance for (models/vocabulary.py)
    full_res_blocks: int = 0  # residual blocks at full resolution after the decoder (models/transformer_net.py)
    # Every ReLU below full resolution filtered (models/blocks.py FilteredReLU): the network
    # follows shifts of the photo that its coarse grid does not (docs/training.md).
    filtered_relu: bool = True
    # The fixed low-pass filters' cutoff, a fraction of their Nyquist frequency (models/blocks.py
    # lowpass_phases): below 1, a margin for the window's transition band. At 1 a trained
    # network's shift equivariance dropped at odd shifts of 1 to 3 pixels; at 0.85 it falls
    # with the shift's size alone, and 0.7 paints a lattice of its own (docs/training.md).
    lowpass_cutoff: float = 0.85
    # auto: bf16 autocast where the machine has bf16 matrix units, else fp32 (models/hardware.py)
    precision: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "decoder", decoder_label(parse_decoder(self.decoder)))
        object.__setattr__(self, "downsample", downsample_label(parse_downsample(self.downsample)))
        if self.loss_pooling not in LOSS_POOLINGS:
            raise ValueError(f"unknown loss pooling {self.loss_pooling!r}; valid: {', '.join(LOSS_POOLINGS)}")
        if self.stability_shift not in STABILITY_SHIFTS:
            raise ValueError(f"unknown stability shift {self.stability_shift!r}; valid: {', '.join(STABILITY_SHIFTS)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if not isinstance(self.filtered_relu, bool):
            raise ValueError(f"filtered_relu must be true or false, got {self.filtered_relu!r}")
        sw = self.stability_weight
        if isinstance(sw, bool) or not isinstance(sw, (int, float)) or not (0 <= sw <= MAX_STABILITY_WEIGHT):
            raise ValueError(f"stability_weight must be a number between 0 and {MAX_STABILITY_WEIGHT:g}, got {sw!r}")
        object.__setattr__(self, "stability_weight", float(sw))
        fc = self.lowpass_cutoff
        if isinstance(fc, bool) or not isinstance(fc, (int, float)) or not (MIN_LOWPASS_CUTOFF <= fc <= 1):
            raise ValueError(f"lowpass_cutoff must be a number between {MIN_LOWPASS_CUTOFF:g} and 1, got {fc!r}")
        object.__setattr__(self, "lowpass_cutoff", float(fc))
        for name, (lo, hi) in LIMITS.items():
            if name != "style_size" or self.style_size is not None:
                _int_range(name, getattr(self, name), lo, hi)
        if not (0 < self.lr <= MAX_LR):
            raise ValueError(f"lr must be in (0, {MAX_LR:g}], got {self.lr}")
        for name in ("content_weight", "style_weight", "tv_weight"):
            v = getattr(self, name)
            if not (v >= 0 and v < float("inf")):
                raise ValueError(f"{name} must be a finite number >= 0, got {v}")
        if self.content_weight == 0 and self.style_weight == 0:
            raise ValueError("content_weight and style_weight cannot both be 0")
        if self.loss_network not in LOSS_NETWORKS:
            raise ValueError(f"unknown loss network {self.loss_network!r}; valid: {', '.join(LOSS_NETWORKS)}")

    @property
    def decoder_stages(self) -> tuple[str, ...]:
        return parse_decoder(self.decoder)

    @property
    def downsample_stages(self) -> tuple[str, ...]:
        return parse_downsample(self.downsample)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
        return cls(**d)

    @classmethod
    def from_stored(cls, d: dict) -> TrainConfig:
        """A config as a checkpoint stored it: settings it lacks mean STORED_FALLBACKS."""
        return cls.from_dict({**{k: v for k, v in STORED_FALLBACKS.items() if k not in d}, **d})

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def per_device_batch(batch: int, devices: int) -> int:
    """The crops each of `devices` DDP ranks trains on: its slice of the one global batch, so a
    step computes the same thing whatever the number of devices (models/data.py CropStream)."""
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise ValueError(f"devices must be a whole number >= 1, got {devices!r}")
    if batch % devices:
        raise ValueError(f"batch {batch} does not split evenly over {devices} devices; "
                         f"use a batch that is a multiple of {devices}")
    return batch // devices


def _int_range(name: str, value: int, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, got {value}")


DEFAULTS = TrainConfig()  # what an unset setting means, everywhere
