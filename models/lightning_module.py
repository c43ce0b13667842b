"""The LightningModule: a TransformerNet trained against a frozen loss network."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image

from models.config import MAX_STYLES, STABILITY_NOISE_STD, TrainConfig
from models.data import style_for_step
from models.images import resize_shorter, to_tensor
from models.loss_network import LossNetwork, build_loss_network
from models.losses import LossWeights, gram_matrix, perceptual_loss, stability_loss
from models.transformer_net import TransformerNet


def encode_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


class StyleTransferModule(pl.LightningModule):
    """Trains `net` so its outputs keep the content's relu2_2 features and the style's Grams.

    The loss network is injected (tests pass a small one) and is not part of the checkpoint:
    it is frozen, large, and rebuilt from its name. The style images are: checkpoints carry
    them, so a resumed run recomputes the same Gram targets from nothing but the checkpoint.

    Several styles (`styles`, a list of (name, PNG bytes), up to MAX_STYLES) train one network
    with conditional instance norm: one Gram target per style, and each step trains on the
    one style `style_for_step(seed, step, n)` names (models/data.py), a pure function of the
    seed and the step, so every DDP rank, a resumed run and both sides of an A/B pair agree.
    `style_name`/`style_png` name the one style of a one-style run (and the first of several).
    """

    def __init__(self, config: TrainConfig, *, style_name: str | None = None, style_png: bytes | None = None,
                 styles: Sequence[tuple[str, bytes]] | None = None, content_label: str = "builtin",
                 loss_network: LossNetwork | None = None, compiled: bool = False, precision: str = "32-true"):
        super().__init__()
        if styles is None:
            if style_name is None or style_png is None:
                raise ValueError("a run needs a style: style_name and style_png, or styles")
            styles = [(style_name, style_png)]
        styles = list(styles)
        if not 1 <= len(styles) <= MAX_STYLES:
            raise ValueError(f"a run takes 1 to {MAX_STYLES} styles, got {len(styles)}")
        self.compiled = compiled
        self.trained_precision = precision  # Lightning's name of what the run computes in; checkpoints record it
        self.config = config
        self.style_names = [name for name, _ in styles]
        self.style_pngs = [png for _, png in styles]
        self.style_name, self.style_png = self.style_names[0], self.style_pngs[0]
        self.content_label = content_label
        # Seeded here so the same seed gives the same shared weights whatever the decoder.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.net = TransformerNet.for_config(config, styles=len(styles))
        loss_network = loss_network or build_loss_network(config.loss_network, pooling=config.loss_pooling)
        if not loss_network.pretrained and config.loss_network != "vgg19-random":
            raise ValueError("refusing to train against a loss network with random weights")
        if loss_network.pooling != config.loss_pooling:
            raise ValueError(f"the loss network given pools with {loss_network.pooling!r}, "
                             f"but the run's settings say loss_pooling={config.loss_pooling!r}")
        # Kept out of the module tree: no state_dict entries, no optimizer parameters.
        self.__dict__["loss_net"] = loss_network
        side = config.style_size or config.size
        # Plain tensors, not buffers (styles differ in shape); moved to the device at fit start.
        self.style_images = [to_tensor(resize_shorter(Image.open(io.BytesIO(png)), side))[None]
                             for png in self.style_pngs]
        self.style_grams: list[dict[str, torch.Tensor]] = []  # one per style, at fit start
        self.target_grams: dict[str, torch.Tensor] = {}  # the first style's (one-style code reads it)
        self._step_losses = self.losses

    @property
    def styles(self) -> int:
        return len(self.style_names)

    @property
    def style_image(self) -> torch.Tensor:
        return self.style_images[0]

    def compute_style_grams(self) -> None:
        """Each style's Gram targets: once per run, not per step."""
        self.loss_net.to(self.device)
        with torch.no_grad():
            self.style_grams = []
            for image in self.style_images:
                feats = self.loss_net(image.to(self.device))
                self.style_grams.append({k: gram_matrix(feats[k]) for k in self.loss_net.style_layers})
        self.target_grams = self.style_grams[0]

    def on_fit_start(self) -> None:
        self.compute_style_grams()
        # Compiled, the step's elementwise work (instance norms, ReLUs, Grams, the losses)
        # is fused; the same arithmetic, so the same losses within float rounding.
        self._step_losses = torch.compile(self.losses) if self.compiled else self.losses

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def style_at(self, step: int) -> int:
        return style_for_step(self.config.seed, step, self.styles)

    def stability_noise(self, step: int, like: torch.Tensor) -> torch.Tensor:
        """The stability loss's noise at `step`: drawn for the whole global batch from a
        generator seeded by (seed, step), this rank's slice taken, so a step computes the same
        on any number of devices and again on resume."""
        cfg = self.config
        g = torch.Generator().manual_seed(int(np.random.SeedSequence([cfg.seed, step, 2]).generate_state(1)[0]))
        noise = torch.randn(cfg.batch, *like.shape[1:], generator=g) * STABILITY_NOISE_STD
        rank = self.trainer.global_rank if self._trainer is not None else 0
        start = rank * like.shape[0]
        return noise[start:start + like.shape[0]].to(like.device, like.dtype)

    def stability_shift(self, step: int) -> tuple[int, int]:
        """The stability loss's shift (dy, dx) at `step` (TrainConfig.stability_shift): the
        same on every rank and again on resume, a function of seed and step."""
        if self.config.stability_shift == "one":
            return 1, 1
        pick = int(np.random.SeedSequence([self.config.seed, step, 3]).generate_state(1)[0]) % 15
        return divmod(pick + 1, 4)  # 1..15: every (dy, dx) in 0..3 x 0..3 but (0, 0)

    @property
    def stability_span(self) -> int:
        """The largest shift of the configured kind: the stability loss crops this many rows
        and columns whatever the step's shift, so every step has one shape."""
        return 1 if self.config.stability_shift == "one" else 3

    def content_target(self, content: torch.Tensor) -> torch.Tensor:
        return self.loss_net.content_target(content)

    def losses(self, content: torch.Tensor, style_grams: Mapping[str, torch.Tensor] | None = None,
               noise: torch.Tensor | None = None, shift: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The step's loss terms for the style selected in the net, against `style_grams`
        (the first style's when not given); with `noise`, the stability term too, at `shift`."""
        out = self.net(content)
        target = self.content_target(content)
        cfg = self.config
        losses = perceptual_loss(self.loss_net, out, content_target=target,
                                 style_grams=self.target_grams if style_grams is None else style_grams,
                                 weights=LossWeights(cfg.content_weight, cfg.style_weight, cfg.tv_weight))
        if noise is not None and cfg.stability_weight > 0:
            stability = stability_loss(self.net, content, output=out, noise=noise, shift=shift,
                                       span=self.stability_span)
            losses["loss"] = losses["loss"] + cfg.stability_weight * stability
            losses["stability"] = stability
        return losses

    def step_losses(self, batch: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """The loss terms of training step `step` on `batch`: the style the schedule names, the
        stability term's noise and shift. What a job's step computes, and what the benches
        time as its bare step (models/bench.py module_step)."""
        style = self.style_at(step)
        if self.styles > 1:
            self.net.select_style(style)  # the same on every rank: a function of seed and step
        noise = self.stability_noise(step, batch) if self.config.stability_weight > 0 else None
        shift = torch.tensor(self.stability_shift(step))  # a tensor: no recompile when it changes
        return self._step_losses(batch, self.style_grams[style], noise, shift)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        losses = self.step_losses(batch, self.global_step)
        # Under DDP every rank decides alike, so all of them fail the run, not one that leaves
        # the others waiting; the logged losses are the mean over the ranks: the global batch's.
        if not self.trainer.strategy.reduce_boolean_decision(bool(torch.isfinite(losses["loss"])), all=True):
            raise FloatingPointError(
                f"loss is {losses['loss'].item()} at step {self.global_step}; lower lr or the loss weights"
            )
        self.log_dict({f"train/{k}": v.detach() for k, v in losses.items()}, prog_bar=True,
                      on_step=True, on_epoch=False, batch_size=batch.shape[0], sync_dist=True)
        return losses["loss"]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # Fused Adam (one kernel for every parameter) where the device has it.
        return torch.optim.Adam(self.net.parameters(), lr=self.config.lr, fused=self.device.type == "cuda")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        from models.checkpoint import describe

        checkpoint["checkerless"] = describe(self)


def style_png_from_image(img: Image.Image) -> bytes:
    """The style as it is stored in checkpoints: PNG, capped at 1024 px on the shorter side."""
    if min(img.size) > 1024:
        img = resize_shorter(img, 1024)
    return encode_png(img)
