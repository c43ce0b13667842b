"""Content images and the crop stream that feeds training.

Data order is a pure function of (seed, batch index): batch b is the same crops of the same
images in every run with that seed, whatever the decoder, and a resumed run continues at the
batch it stopped at. The A/B comparison and exact resume both rest on this.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from models.config import MAX_STYLES, per_device_batch
from models.builtin_images import BUILTIN_PHOTOS, load_style
from models.images import ImageError, list_images, open_image, resize_shorter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageSource:
    name: str
    load: Callable[[], Image.Image]  # -> RGB image; raises ImageError


BUILTIN_LABEL = "builtin"


def builtin_photos() -> list[ImageSource]:
    return [ImageSource(name, load) for name, load in BUILTIN_PHOTOS.items()]


def load_styles(specs: str | Path | Sequence[str | Path]) -> list[tuple[str, Image.Image]]:
    """One style spec or a list of 1..MAX_STYLES (files or built-in names), in order."""
    items = [specs] if isinstance(specs, (str, Path)) else list(specs)
    if not 1 <= len(items) <= MAX_STYLES:
        raise ValueError(f"a run takes 1 to {MAX_STYLES} styles, got {len(items)}")
    return [load_style(s) for s in items]


# Not the data order's streams ([seed, epoch], [seed, n]): a third element keeps them apart.
_STYLE_STREAM = 1


def style_for_step(seed: int, step: int, n: int) -> int:
    """The style (0..n-1) that optimiser step `step` (0-based) of a run of n styles trains on.

    Steps come in rounds of n; round r = step // n visits every style once, in the order of a
    permutation seeded by (seed, r). So every style gets the same number of steps (within one)
    at every point of the run, the order is not a fixed cycle, and the style is a pure function
    of (seed, step): the same on every DDP rank, on resume, and in both runs of an A/B pair."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if n == 1:
        return 0
    rnd, pos = divmod(step, n)
    return int(np.random.default_rng([seed, rnd, _STYLE_STREAM]).permutation(n)[pos])


@dataclass
class ContentSet:
    """The images a run trains on, in a fixed order (the crop stream indexes it)."""

    sources: list[ImageSource]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    label: str = "unnamed"  # what the checkpoint says it was trained on
    streamed: bool = False  # read over the network as it trains: decoded off the training process

    @classmethod
    def from_folder(cls, folder: str | Path) -> ContentSet:
        """Every readable image under the folder; the rest skipped with their reasons."""
        root = Path(folder)
        good, skipped = [], []
        for p in list_images(root):
            try:
                open_image(p)
            except ImageError as e:
                skipped.append((str(p.relative_to(root)), str(e)))
                continue
            good.append(ImageSource(str(p.relative_to(root)), lambda p=p: open_image(p)))
        if not good:
            raise ImageError(f"{root}: no readable images (found {len(skipped)} unreadable file(s))")
        for name, reason in skipped:
            log.warning("skipped unreadable content file %s: %s", name, reason)
        return cls(good, skipped, label=str(root.resolve()))

    @classmethod
    def builtin(cls) -> ContentSet:
        return cls(builtin_photos(), label=BUILTIN_LABEL)

    @classmethod
    def resolve(cls, folder: str | Path | None) -> ContentSet:
        return cls.builtin() if folder is None else cls.from_folder(folder)


def random_crop(img: Image.Image, size: int, rng: np.random.Generator) -> torch.Tensor:
    """Scale the shorter side to a random value in [size, min(2*size, native)] (never below
    the crop), then crop size x size at a random place; (3, size, size) float 0..255."""
    short = min(img.size)
    hi = max(size, min(short, 2 * size))
    img = resize_shorter(img, int(rng.integers(size, hi + 1)))
    w, h = img.size
    x, y = int(rng.integers(0, w - size + 1)), int(rng.integers(0, h - size + 1))
    a = np.asarray(img.crop((x, y, x + size, y + size)), dtype=np.float32)
    return torch.from_numpy(a.copy()).permute(2, 0, 1)


class CropStream(IterableDataset):
    """An endless stream of batches (B, 3, size, size) starting at batch `start`.

    Sample n = b * batch + j is image perm_e[n mod N] of epoch e = n // N (a permutation
    seeded by (seed, e)), cropped with a generator seeded by (seed, n). DataLoader workers
    take batches in turn, and the DataLoader reads them in turn, so the order is unchanged.
    Under DDP, rank r of `world` yields only its slice of each global batch (j in
    [r * B/world, (r+1) * B/world)): the ranks together train on the same crops as one process.
    """

    def __init__(self, content: ContentSet, *, size: int, batch: int, seed: int, start: int = 0,
                 rank: int = 0, world: int = 1):
        self.content, self.size, self.batch, self.seed, self.start = content, size, batch, seed, start
        self.local = per_device_batch(batch, world)
        self.first = rank * self.local  # this rank's first sample within a global batch
        self._perms: dict[int, np.ndarray] = {}

    def image_index(self, n: int) -> int:
        epoch, pos = divmod(n, len(self.content.sources))
        if epoch not in self._perms:
            self._perms = {epoch: np.random.default_rng([self.seed, epoch]).permutation(len(self.content.sources))}
        return int(self._perms[epoch][pos])

    def sample(self, n: int) -> torch.Tensor:
        i = self.image_index(n)
        sources = self.content.sources
        for k in range(len(sources)):  # a file that broke after the scan: take the next one
            src = sources[(i + k) % len(sources)]
            try:
                img = src.load()
                break
            except ImageError as e:
                log.warning("content image %s became unreadable: %s", src.name, e)
        else:
            raise ImageError("no content image can be read any more")
        return random_crop(img, self.size, np.random.default_rng([self.seed, n]))

    def batch_at(self, b: int) -> torch.Tensor:
        return torch.stack([self.sample(b * self.batch + self.first + j) for j in range(self.local)])

    def __iter__(self) -> Iterator[torch.Tensor]:
        info = get_worker_info()
        b = self.start + (info.id if info else 0)
        step = info.num_workers if info else 1
        while True:
            yield self.batch_at(b)
            b += step


class ContentDataModule(pl.LightningDataModule):
    def __init__(self, content: ContentSet, *, size: int, batch: int, seed: int, num_workers: int = 0,
                 pin_memory: bool = False):
        super().__init__()
        self.content, self.size, self.batch, self.seed, self.num_workers = content, size, batch, seed, num_workers
        self.pin_memory = pin_memory

    def train_dataloader(self) -> DataLoader:
        # Called after a checkpoint is restored, so a resumed run starts at its next batch.
        trainer = self.trainer
        start, rank, world = (trainer.global_step, trainer.global_rank, trainer.world_size) if trainer else (0, 0, 1)
        stream = CropStream(self.content, size=self.size, batch=self.batch, seed=self.seed, start=start,
                            rank=rank, world=world)
        return DataLoader(stream, batch_size=None, num_workers=self.num_workers, persistent_workers=False,
                          pin_memory=self.pin_memory, prefetch_factor=4 if self.num_workers else None)
