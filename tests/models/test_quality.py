"""Style and content distance (models/quality.py), and the probe that records them with the
artifact scores during a run."""

import csv

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from models.artifacts import checkerboard_score
from models.config import TrainConfig
from models.images import from_tensor, to_tensor
from models.lightning_module import StyleTransferModule, style_png_from_image
from models.builtin_images import load_style
from models.losses import gram_matrix, style_loss
from models.preview import PANEL, PROBE_SCORED, probe_batch
from models.quality import KEYS, distances
from models.training import train

SIZE = 48  # the probe's photos here: its numbers are checked against a computation at the same size


def image(array, size=64) -> torch.Tensor:
    return to_tensor(Image.fromarray(array).convert("RGB").resize((size, size)))


@pytest.fixture(scope="module")
def photos():
    return torch.stack([image(skimage.data.astronaut()), image(skimage.data.coffee())])


@pytest.fixture(scope="module")
def style():
    return image(skimage.data.immunohistochemistry())[None]


def grams(loss_net, style):
    with torch.no_grad():
        feats = loss_net(style)
    return {k: gram_matrix(feats[k]) for k in loss_net.style_layers}


def test_the_photo_itself_has_content_distance_zero_and_the_style_itself_style_distance_zero(vgg19, photos, style):
    g = grams(vgg19, style)
    d = distances(vgg19, photos, photos, g)
    assert d["content_distance"].shape == (2,) and torch.all(d["content_distance"] == 0)
    assert torch.all(d["style_distance"] > 0)  # a photo is not the style
    assert distances(vgg19, style, style, g)["style_distance"].item() == pytest.approx(0, abs=1e-6)


def test_both_distances_grow_with_a_perturbation(vgg19, photos, style):
    g = grams(vgg19, style)
    noise = torch.randn(photos.shape, generator=torch.Generator().manual_seed(0))
    content = [distances(vgg19, photos + a * noise, photos, g)["content_distance"] for a in (5, 20, 60)]
    assert torch.all(content[0] < content[1]) and torch.all(content[1] < content[2])
    styled = [distances(vgg19, style + a * noise[:1], style, g)["style_distance"].item() for a in (0, 5, 20, 60)]
    assert styled == sorted(styled) and styled[0] < 1e-6 < styled[1], styled


def test_the_style_distance_is_the_training_losss_style_term_per_image(vgg19, photos, style):
    g = grams(vgg19, style)
    with torch.no_grad():
        expected = style_loss(vgg19(photos), g)
    assert distances(vgg19, photos, photos, g)["style_distance"].mean().item() == pytest.approx(expected.item(), rel=1e-5)


def test_the_outputs_are_measured_as_a_png_holds_them(vgg19, photos, style):
    g = grams(vgg19, style)
    over = photos.clone()
    over[:, :, :8] = 400.0  # beyond white: a PNG holds 255
    clipped = over.clamp(0, 255)
    a, b = distances(vgg19, over, photos, g), distances(vgg19, clipped, photos, g)
    assert all(torch.equal(a[k], b[k]) for k in KEYS)


def test_the_probe_records_quality_and_artifacts_at_init_every_n_steps_and_at_the_end(tmp_path, vgg19):
    cfg = TrainConfig(size=32, batch=2, steps=5, lr=1e-2, seed=3, decoder="deconv", log_every=1)
    result = train(cfg, out_dir=tmp_path, style="ihc", progress=False, loss_network=vgg19, probe_every=2,
                   probe_size=SIZE)
    rows = [r.to_dict() for r in result.artifacts]  # every measure present: no None left out
    assert [r["step"] for r in rows] == [0, 2, 4, 5]
    for r in rows:
        assert set(r) == {"step", "artifact_p2", "artifact_p4", "artifact_p8", "eq_t1", "eq_t2", "eq_t3", "eq_t4", *KEYS}
        assert all(np.isfinite(v) for v in r.values()) and r["style_distance"] > 0 and r["content_distance"] > 0
    assert rows[-1]["style_distance"] < rows[0]["style_distance"]  # training transfers style

    # At init: the scores of astronaut's output (the probe of earlier runs), the distances of
    # the whole panel, from the network the run started with.
    module = StyleTransferModule(cfg, style_name="ihc", style_png=style_png_from_image(load_style("ihc")[1]),
                                 loss_network=vgg19)
    module.on_fit_start()
    batch = probe_batch(SIZE)
    assert batch.shape == (len(PANEL), 3, SIZE, SIZE)
    with torch.no_grad():
        out = module.net(batch)
    s = checkerboard_score(np.asarray(from_tensor(out[PANEL.index(PROBE_SCORED)])))
    assert rows[0]["artifact_p2"] == pytest.approx(s[2], abs=1e-3) and rows[0]["artifact_p4"] == pytest.approx(s[4], abs=1e-3)
    d = distances(vgg19, out, batch, module.target_grams)
    assert rows[0]["style_distance"] == pytest.approx(d["style_distance"].mean().item(), rel=1e-4)
    assert rows[0]["content_distance"] == pytest.approx(d["content_distance"].mean().item(), rel=1e-4)

    # The logger has them beside the losses.
    with open(next(tmp_path.glob("logs/version_*/metrics.csv"))) as f:
        logged = [r for r in csv.DictReader(f) if r.get("probe/style_distance")]
    assert [int(r["step"]) for r in logged] == [0, 2, 4, 5]


def test_the_probe_measures_by_the_yardstick_whatever_the_run_trains_against(tmp_path, vgg19):
    """A run against average pooling is measured by the fixed VGG19 with max pooling, with the
    style's Grams at the size it was trained at: its numbers compare with a default run's."""
    from models.loss_network import build_loss_network
    from models.quality import style_grams, yardstick

    avg = build_loss_network("vgg19", pooling="avg")
    cfg = TrainConfig(size=32, batch=2, steps=1, seed=4, loss_pooling="avg", style_size=48)
    result = train(cfg, out_dir=tmp_path, style="ihc", progress=False, loss_network=avg, probe_every=10,
                   probe_size=SIZE)
    module = StyleTransferModule(cfg, style_name="ihc", style_png=style_png_from_image(load_style("ihc")[1]),
                                 loss_network=avg)
    batch = probe_batch(SIZE)
    with torch.no_grad():
        out = module.net(batch)  # the network the run started from: the probe's step-0 row
    ruler = yardstick()
    assert ruler.pooling == "max" and ruler.arch == "vgg19"
    expected = distances(ruler, out, batch, style_grams(ruler, module.style_image))
    own = distances(avg, out, batch, style_grams(avg, module.style_image))
    row = result.artifacts[0].to_dict()
    assert row["style_distance"] == pytest.approx(expected["style_distance"].mean().item(), rel=1e-4)
    assert row["content_distance"] == pytest.approx(expected["content_distance"].mean().item(), rel=1e-4)
    assert abs(own["style_distance"].mean().item() / row["style_distance"] - 1) > 0.1  # the run's own net differs
