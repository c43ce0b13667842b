"""DeepDream through the offline VGG19 at a tiny size: what the article claims, and what we measure."""

import pytest
import torch

from models.artifacts.deepdream import DREAM_LAYERS, dream, dream_table
from models.loss_network import build_loss_network
from service.cli.artifacts import _photo


@pytest.fixture(scope="module")
def nets(vgg19):
    return {"max": vgg19, "avg": build_loss_network("vgg19", pooling="avg")}


def test_a_dream_is_an_image_and_is_seeded(nets):
    photo = _photo(32)
    a = dream(nets["max"], photo, layer="relu2_2", steps=3, jitter=2, seed=1)
    assert a.shape == photo.shape and 0 <= a.min() and a.max() <= 255 and torch.equal(a, a.round())
    assert torch.equal(a, dream(nets["max"], photo, layer="relu2_2", steps=3, jitter=2, seed=1))
    assert not torch.equal(a, photo)
    assert DREAM_LAYERS == ("relu1_2", "relu2_2", "relu3_4", "relu4_4")
    assert set(DREAM_LAYERS) <= set(nets["max"](photo[None]))  # the loss network computes them all
    with pytest.raises(ValueError, match="unknown layer 'conv9_9'"):
        dream(nets["max"], photo, layer="conv9_9")
    with pytest.raises(ValueError, match="jitter"):
        dream(nets["max"], photo, jitter=-1)


def test_pooling_and_jitter_as_measured(nets):
    """The article: a fixed dream shows the checkerboard of the strided backward pass, jitter
    reduces it, average pooling helps. On VGG19 (docs/seed.md), at this size: max pooling does put
    more period-2 power into what the ascent adds than average pooling (holds), but the added
    pattern stays below the rest of its spectrum (no visible checkerboard), and jitter changes its
    score by under 3 dB (the jitter claim is not reproduced)."""
    rows = {(r.pooling, r.jitter): r for r in dream_table(_photo(48), nets, layer="relu2_2", steps=10)}
    assert rows[("max", 0)].added_p2 > rows[("avg", 0)].added_p2 + 2
    assert rows[("max", 0)].added_p2 < 0
    assert abs(rows[("max", 0)].added_p2 - rows[("max", 4)].added_p2) < 3
