"""The yardstick: one training step written the way pytorch/examples' fast_neural_style
does it (Johnson et al.'s network with nearest-upsample-then-conv, VGG16 features with the
ImageNet normalisation, plain fp32 eager, the content target taken from a pass through the
whole loss network, Adam). Our own code, written to that recipe, used only by
`checkerless bench` to measure against. Its VGG16 has random weights: the arithmetic, and so
the time, is the same as with trained ones, and nothing is downloaded.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CONTENT_WEIGHT, STYLE_WEIGHT = 1e5, 1e10  # the recipe's defaults


class _Conv(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1, upsample: bool = False):
        super().__init__()
        self.upsample = upsample
        self.pad = nn.ReflectionPad2d(k // 2)
        self.conv = nn.Conv2d(c_in, c_out, k, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(self.pad(x))


class _Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1, self.in1 = _Conv(c, c, 3), nn.InstanceNorm2d(c, affine=True)
        self.conv2, self.in2 = _Conv(c, c, 3), nn.InstanceNorm2d(c, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.in2(self.conv2(F.relu(self.in1(self.conv1(x)))))


class ReferenceNet(nn.Module):
    """Three convs down, five residual blocks, two upsample-convs, a 9x9 conv to RGB."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out, k, s in ((3, 32, 9, 1), (32, 64, 3, 2), (64, 128, 3, 2)):
            layers += [_Conv(c_in, c_out, k, s), nn.InstanceNorm2d(c_out, affine=True), nn.ReLU()]
        layers += [_Residual(128) for _ in range(5)]
        for c_in, c_out in ((128, 64), (64, 32)):
            layers += [_Conv(c_in, c_out, 3, upsample=True), nn.InstanceNorm2d(c_out, affine=True), nn.ReLU()]
        layers.append(_Conv(32, 3, 9))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class ReferenceVGG16(nn.Module):
    """VGG16's features to relu4_3, returning relu1_2, relu2_2, relu3_3 and relu4_3."""

    TAPS = (3, 8, 15, 22)  # indices of those ReLUs in torchvision's vgg16.features

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for block, convs in enumerate((2, 2, 3, 3)):
            c_out = 64 * 2**block
            for _ in range(convs):
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True)]
                c_in = c_out
            if block < 3:
                layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers[: self.TAPS[-1] + 1])
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.TAPS:
                out.append(x)
        return out


def normalize(rgb255: torch.Tensor) -> torch.Tensor:
    mean = rgb255.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = rgb255.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (rgb255 / 255.0 - mean) / std


def gram(y: torch.Tensor) -> torch.Tensor:
    b, c, h, w = y.shape
    f = y.view(b, c, h * w)
    return f.bmm(f.transpose(1, 2)) / (c * h * w)


class ReferenceStep:
    """net + VGG16 + Adam; `step(batch)` is one optimiser step on a (B, 3, H, W) 0..255 batch."""

    def __init__(self, style: torch.Tensor, device: torch.device | str = "cpu", lr: float = 1e-3):
        self.net = ReferenceNet().to(device)
        self.vgg = ReferenceVGG16().to(device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr)
        self.style_grams = [gram(f) for f in self.vgg(normalize(style.to(device)))]

    def step(self, x: torch.Tensor) -> float:
        self.opt.zero_grad()
        y = self.net(x)
        features_y = self.vgg(normalize(y))
        features_x = self.vgg(normalize(x))  # the whole network, for one content layer
        content = CONTENT_WEIGHT * F.mse_loss(features_y[1], features_x[1])
        style = sum(F.mse_loss(gram(fy), gs.expand(len(x), -1, -1)) for fy, gs in zip(features_y, self.style_grams))
        loss = content + STYLE_WEIGHT * style
        loss.backward()
        self.opt.step()
        return loss.item()


def train_reference(*, steps: int, size: int = 128, batch: int = 4, style: str = "brick", seed: int = 0,
                    device: str = "cpu") -> float:
    """A whole run the recipe's way: the built-in photos resized and centre-cropped, batched,
    `steps` optimiser steps; returns the last loss. `checkerless bench --end-to-end` times it
    as a process beside `checkerless train`."""
    from itertools import cycle

    import numpy as np

    from models.data import builtin_photos
    from models.builtin_images import load_style
    from models.images import resize_shorter, to_tensor

    torch.manual_seed(seed)

    def crop(img):
        img = resize_shorter(img, size)
        w, h = img.size
        x, y = (w - size) // 2, (h - size) // 2
        return torch.from_numpy(np.asarray(img.crop((x, y, x + size, y + size)), dtype=np.float32).copy()).permute(2, 0, 1)

    photos = cycle(src.load() for src in builtin_photos())
    style_image = to_tensor(resize_shorter(load_style(style)[1], size))[None]
    runner = ReferenceStep(style_image, device=device)
    loss = float("nan")
    for _ in range(steps):
        loss = runner.step(torch.stack([crop(next(photos)) for _ in range(batch)]).to(device))
    return loss


if __name__ == "__main__":  # python -m models.reference STEPS [SIZE BATCH]
    import sys

    args = [int(a) for a in sys.argv[1:]]
    print(train_reference(steps=args[0], **dict(zip(("size", "batch"), args[1:]))))
