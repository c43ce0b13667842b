"""The article's "Image Generation Results", on a small DCGAN (Radford et al. 2016) shape.

Generators: z (64) -> 4x4x128 -> four x2 upsampling stages -> 64x64 RGB (tanh). Each stage is
a decoder from the project's one registry (models/blocks.py), so "deconv" is the same k3 s2
transposed convolution the transfer network uses. Three of the article's generators:

- `deconv-last-two`: resize-conv in the first two stages, deconv in the last two;
- `deconv-last`: deconv in the last stage only;
- `resize-conv`: nearest-neighbour resize then a convolution in every stage.

The article: "the difference in artifacts can be seen before any training occurs" (the first
shows periods 2 and 4, the second period 2, the third neither), the artifacts stay with
deconv through training, and with a generator that uses neither, a discriminator whose first
layer has stride 2 puts period-2 artifacts into the generated images (the gradient of a
strided convolution is a transposed one), a stride-1 first layer barely does.

Everything is seeded: the same seed gives the same data order, noise and initial weights of
the layers the variants share (the 4x4 projection is built first, then the stages).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.artifacts.score import checkerboard_score
from models.blocks import DECODERS

Z_DIM = 64
GAN_SIZE = 64  # generated image side: 4 * 2**4
_CHANNELS = (128, 64, 32, 16, 3)  # 4x4, then after each x2 stage

# Generator name -> the four stages' decoders, first stage first.
GENERATORS: dict[str, tuple[str, ...]] = {
    "deconv-last-two": ("resize-nearest", "resize-nearest", "deconv", "deconv"),
    "deconv-last": ("resize-nearest", "resize-nearest", "resize-nearest", "deconv"),
    "resize-conv": ("resize-nearest",) * 4,
}
# The discriminator's first layer: a 3x3 convolution of stride 2 or 1 (same padding).
DISCRIMINATOR_STRIDES = (2, 1)


class Generator(nn.Module):
    def __init__(self, stages: Sequence[str]):
        super().__init__()
        if len(stages) != 4:
            raise ValueError(f"a generator has 4 upsampling stages, got {len(stages)}")
        unknown = [s for s in stages if s not in DECODERS]
        if unknown:
            raise ValueError(f"unknown decoder {unknown[0]!r}; valid: {', '.join(DECODERS)}")
        self.stages = tuple(stages)
        self.project = nn.Linear(Z_DIM, _CHANNELS[0] * 16)
        layers: list[nn.Module] = [nn.BatchNorm2d(_CHANNELS[0]), nn.ReLU(inplace=True)]
        for i, name in enumerate(stages):
            c_in, c_out = _CHANNELS[i], _CHANNELS[i + 1]
            layers.append(DECODERS[name].build(c_in, c_out))
            layers += [nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)] if i < 3 else [nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (B, Z_DIM) -> (B, 3, 64, 64) in -1..1
        return self.body(self.project(z).view(-1, _CHANNELS[0], 4, 4))


class Discriminator(nn.Module):
    """First layer a 3x3 conv of stride `first_stride` (1 or 2), then 4x4 stride-2 convs down to
    4x4 (LeakyReLU 0.2), a linear logit. Both strides end with the same number of layers after
    the first (a stride-1 first layer leaves one more 4x4 stride-2 step)."""

    def __init__(self, first_stride: int = 2):
        super().__init__()
        if first_stride not in DISCRIMINATOR_STRIDES:
            raise ValueError(f"the discriminator's first stride must be 1 or 2, got {first_stride}")
        self.first_stride = first_stride
        self.first = nn.Conv2d(3, 32, 3, stride=first_stride, padding=1)
        layers: list[nn.Module] = [nn.LeakyReLU(0.2, inplace=True)]
        c, side = 32, GAN_SIZE // first_stride
        while side > 4:
            layers += [nn.Conv2d(c, min(c * 2, 256), 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
            c, side = min(c * 2, 256), side // 2
        self.body = nn.Sequential(*layers)
        self.logit = nn.Linear(c * 16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit(self.body(self.first(x)).flatten(1))[:, 0]


def build_generator(name: str, seed: int) -> Generator:
    if name not in GENERATORS:
        raise ValueError(f"unknown generator {name!r}; valid: {', '.join(GENERATORS)}")
    torch.manual_seed(seed)
    return Generator(GENERATORS[name])


def to_pixels(x: torch.Tensor) -> torch.Tensor:
    """-1..1 -> 0..255, rounded to whole levels: the values a PNG of it holds, so the images
    `--plot` writes score exactly as the table says (tanh keeps them in range)."""
    return ((x + 1) * 127.5).round()


def generate(g: Generator, n: int, seed: int) -> torch.Tensor:
    """n images (0..255, (n, 3, 64, 64)) from seeded noise, BatchNorm in inference mode for
    a trained generator (running statistics), batch statistics for an untrained one."""
    z = torch.randn(n, Z_DIM, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return to_pixels(g(z))


def batch_scores(images: torch.Tensor) -> dict[int, float]:
    scores = [checkerboard_score(x) for x in images]
    return {p: float(np.mean([s[p] for s in scores])) for p in (2, 4)}


@dataclass(frozen=True)
class GanRow:
    generator: str
    discriminator_stride: int | None  # None: the untrained generator
    steps: int
    seeds: int
    p2_mean: float
    p2_std: float
    p4_mean: float
    p4_std: float
    d_loss: float | None = None  # the last step's losses, mean over seeds
    g_loss: float | None = None
    stages: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict:
        return asdict(self)


def _row(name: str, stride: int | None, steps: int, scores: list[dict[int, float]], losses=None) -> GanRow:
    p2, p4 = [s[2] for s in scores], [s[4] for s in scores]
    d = g = None
    if losses:
        d, g = float(np.mean([x[0] for x in losses])), float(np.mean([x[1] for x in losses]))
    return GanRow(generator=name, discriminator_stride=stride, steps=steps, seeds=len(scores),
                  p2_mean=float(np.mean(p2)), p2_std=float(np.std(p2)), p4_mean=float(np.mean(p4)),
                  p4_std=float(np.std(p4)), d_loss=d, g_loss=g, stages=GENERATORS[name])


def init_gan_table(*, generators: Sequence[str] = tuple(GENERATORS), seeds: Sequence[int] = (0, 1, 2, 3),
                   samples: int = 8) -> list[GanRow]:
    """Untrained generators: the mean checkerboard score of `samples` images, over seeds."""
    rows = []
    for name in generators:
        scores = [batch_scores(generate(build_generator(name, s).train(), samples, seed=1000 + s)) for s in seeds]
        rows.append(_row(name, None, 0, scores))
    return rows


# --- adversarial training on crops of the built-in photographs -------------------------------

def photo_crops(seed: int, *, scale: int = 128) -> Callable[[int], torch.Tensor]:
    """A sampler of n random 64x64 crops (-1..1) of scikit-image's photographs, each photo
    first resized so its shorter side is `scale` pixels (crops then hold whole objects)."""
    from models.builtin_images import BUILTIN_PHOTOS
    from models.images import to_tensor

    photos = []
    for load in BUILTIN_PHOTOS.values():
        img = load()
        w, h = img.size
        k = scale / min(w, h)
        photos.append(to_tensor(img.resize((max(GAN_SIZE, round(w * k)), max(GAN_SIZE, round(h * k))))) / 127.5 - 1)
    rng = np.random.default_rng(seed)

    def sample(n: int) -> torch.Tensor:
        out = []
        for _ in range(n):
            p = photos[rng.integers(len(photos))]
            top = rng.integers(p.shape[1] - GAN_SIZE + 1)
            left = rng.integers(p.shape[2] - GAN_SIZE + 1)
            out.append(p[:, top:top + GAN_SIZE, left:left + GAN_SIZE])
        return torch.stack(out)

    return sample


def train_gan(name: str, *, first_stride: int = 2, steps: int = 200, batch: int = 16, seed: int = 0,
              lr: float = 2e-4) -> tuple[Generator, tuple[float, float]]:
    """DCGAN training (non-saturating loss, Adam 2e-4, betas 0.5/0.999) of generator `name`
    against a discriminator with the given first stride. Returns the generator (eval mode)
    and the last step's (discriminator loss, generator loss)."""
    g = build_generator(name, seed)
    torch.manual_seed(seed + 1)
    d = Discriminator(first_stride)
    opt_g = torch.optim.Adam(g.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=lr, betas=(0.5, 0.999))
    real_batches = photo_crops(seed)
    noise = torch.Generator().manual_seed(seed + 2)
    ones, zeros = torch.ones(batch), torch.zeros(batch)
    d_loss = g_loss = torch.tensor(float("nan"))
    g.train()
    for _ in range(steps):
        real = real_batches(batch)
        fake = g(torch.randn(batch, Z_DIM, generator=noise))
        d_loss = (F.binary_cross_entropy_with_logits(d(real), ones)
                  + F.binary_cross_entropy_with_logits(d(fake.detach()), zeros))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss = F.binary_cross_entropy_with_logits(d(fake), ones)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
    return g.eval(), (d_loss.item(), g_loss.item())


def trained_gan_table(*, generators: Sequence[str] = tuple(GENERATORS), strides: Sequence[int] = (2,),
                      steps: int = 200, seeds: Sequence[int] = (0,), samples: int = 16, batch: int = 16,
                      keep: dict | None = None) -> list[GanRow]:
    """Each generator trained against each discriminator stride, per seed; the mean score of
    `samples` generated images. `keep`, if given, receives (name, stride) -> seed 0's images."""
    rows = []
    for name in generators:
        for stride in strides:
            scores, losses = [], []
            for s in seeds:
                g, loss = train_gan(name, first_stride=stride, steps=steps, batch=batch, seed=s)
                images = generate(g, samples, seed=1000 + s)
                scores.append(batch_scores(images))
                losses.append(loss)
                if keep is not None and s == seeds[0]:
                    keep[(name, stride)] = images
            rows.append(_row(name, stride, steps, scores, losses))
    return rows
