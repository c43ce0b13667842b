"""The LightningModule: a TransformerNet trained against a frozen loss network."""

from __future__ import annotations

import io

import pytorch_lightning as pl
import torch
from PIL import Image

from models.config import TrainConfig
from models.images import resize_shorter, to_tensor
from models.loss_network import LossNetwork, build_loss_network
from models.losses import LossWeights, gram_matrix, perceptual_loss
from models.transformer_net import TransformerNet


def encode_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


class StyleTransferModule(pl.LightningModule):
    """Trains `net` so its outputs keep the content's relu2_2 features and the style's Grams.

    The loss network is injected (tests pass a small one) and is not part of the checkpoint:
    it is frozen, large, and rebuilt from its name. The style image is: checkpoints carry it,
    so a resumed run recomputes the same Gram targets from nothing but the checkpoint.
    """

    def __init__(self, config: TrainConfig, *, style_name: str, style_png: bytes,
                 content_label: str = "builtin", loss_network: LossNetwork | None = None, compiled: bool = False):
        super().__init__()
        self.compiled = compiled
        self.config = config
        self.style_name = style_name
        self.content_label = content_label
        self.style_png = style_png
        # Seeded here so the same seed gives the same shared weights whatever the decoder.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.net = TransformerNet(decoder=config.decoder_stages, downsample=config.downsample_stages)
        loss_network = loss_network or build_loss_network(config.loss_network, pooling=config.loss_pooling)
        if not loss_network.pretrained and config.loss_network != "vgg19-random":
            raise ValueError("refusing to train against a loss network with random weights")
        if loss_network.pooling != config.loss_pooling:
            raise ValueError(f"the loss network given pools with {loss_network.pooling!r}, "
                             f"but the run's settings say loss_pooling={config.loss_pooling!r}")
        # Kept out of the module tree: no state_dict entries, no optimizer parameters.
        self.__dict__["loss_net"] = loss_network
        style = to_tensor(resize_shorter(Image.open(io.BytesIO(style_png)), config.style_size or config.size))
        self.register_buffer("style_image", style[None], persistent=False)
        self.target_grams: dict[str, torch.Tensor] = {}
        self._step_losses = self.losses

    def on_fit_start(self) -> None:
        self.loss_net.to(self.device)
        with torch.no_grad():  # the style's Grams: once per run, not per step
            feats = self.loss_net(self.style_image)
            self.target_grams = {k: gram_matrix(feats[k]) for k in self.loss_net.style_layers}
        # Compiled, the step's elementwise work (instance norms, ReLUs, Grams, the losses)
        # is fused; the same arithmetic, so the same losses within float rounding.
        self._step_losses = torch.compile(self.losses) if self.compiled else self.losses

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def losses(self, content: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.net(content)
        target = self.loss_net.content_target(content)
        cfg = self.config
        return perceptual_loss(self.loss_net, out, content_target=target, style_grams=self.target_grams,
                               weights=LossWeights(cfg.content_weight, cfg.style_weight, cfg.tv_weight))

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        losses = self._step_losses(batch)
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
