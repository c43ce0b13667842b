"""Shared fixtures: tiny settings, images made by the test or shipped by scikit-image."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Training on two cores: keep torch from oversubscribing them in tests.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def vgg19():
    from models.loss_network import build_loss_network

    return build_loss_network("vgg19")


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    """A folder of three small real photographs (scikit-image's), one in a subfolder."""
    import skimage.data

    d = tmp_path / "content"
    (d / "sub").mkdir(parents=True)
    Image.fromarray(skimage.data.astronaut()).resize((96, 96)).save(d / "astronaut.png")
    Image.fromarray(skimage.data.coffee()).resize((120, 80)).save(d / "coffee.jpg")
    Image.fromarray(skimage.data.chelsea()).resize((90, 60)).save(d / "sub" / "chelsea.png")
    return d


@pytest.fixture
def style_png(tmp_path: Path) -> Path:
    import skimage.data

    p = tmp_path / "style.png"
    Image.fromarray(skimage.data.immunohistochemistry()).resize((64, 64)).save(p)
    return p


def rgb_noise(h: int, w: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))
