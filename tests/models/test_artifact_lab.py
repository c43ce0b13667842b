"""The artifact lab asserts the physics of the article, not the formatting of numbers."""

import csv

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from models.artifacts.gradient import gradient_table
from models.artifacts.init import build, constant_response, init_table, pattern_period
from models.artifacts.overlap import overlap_map, overlap_period
from models.artifacts.spectra import difference_spectrum, log_spectrum, plot_spectrum
from models.config import TrainConfig
from models.training import train


def photo(size: int = 64) -> torch.Tensor:
    return torch.tensor(np.asarray(Image.fromarray(skimage.data.astronaut()).resize((size, size)))).permute(2, 0, 1).float()


def test_overlap_of_k3_s2_is_exactly_1_2_4():
    counts = overlap_map("deconv", size=12)
    assert overlap_period(counts) == 2
    assert np.array_equal(counts[:2, :2], [[1, 2], [2, 4]])
    assert set(np.unique(counts)) == {1, 2, 4}


@pytest.mark.parametrize("decoder", ["deconv4", "resize-nearest", "resize-bilinear", "subpixel"])
def test_overlap_is_flat_for_even_and_resize_decoders(decoder):
    counts = overlap_map(decoder, size=12)
    assert overlap_period(counts) == 1 and counts.min() == counts.max() > 0


def test_stacked_deconvs_compound_to_period_4():
    counts = overlap_map("deconv,deconv", size=12)
    assert overlap_period(counts) == 4
    assert overlap_period(overlap_map("resize-nearest,deconv", size=12)) == 2


def test_constant_input_through_deconv_is_periodic_and_through_resize_nearest_is_not():
    deconv, nearest = build("deconv", 0), build("resize-nearest", 0)
    for response in constant_response(deconv, seed=0):
        assert pattern_period(response) == 2
    for response in constant_response(nearest, seed=0):
        assert pattern_period(response) == 0
        assert response.std(axis=(1, 2)).max() < 1e-3


def test_the_articles_finding_before_training():
    rows = {r.decoder: r for r in init_table(photo(), seeds=[0, 1])}
    both, last, first, none = (rows[k] for k in ["deconv", "resize-nearest,deconv", "deconv,resize-nearest", "resize-nearest"])
    assert both.p2_mean > 5 and both.p4_mean > 0  # periods 2 and 4
    assert last.p2_mean > 5 and last.p4_mean < both.p4_mean - 5  # period 2 only
    assert first.p4_mean > 0 and first.p2_mean < both.p2_mean - 10  # period 4 only
    assert none.p2_mean < 0 and none.p4_mean < 0  # none
    assert both.constant_periods == (2, 2) and none.constant_periods == (0, 0)


def test_gradients_through_strides_and_max_pooling_carry_checkerboards():
    rows = {r.probe: r for r in gradient_table(photo(), seeds=[0, 1])}
    assert rows["conv k3 stride 2"].p2_mean > rows["conv k3 stride 1"].p2_mean + 15
    assert rows["conv k3 stride 1 + max pool 2"].p2_mean > rows["conv k3 stride 1 + avg pool 2"].p2_mean + 5


def test_spectra_and_difference_spectra(tmp_path):
    x = photo()[None]
    with torch.no_grad():
        a, b = build("deconv", 0)(x)[0], build("resize-nearest", 0)(x)[0]
    diff = difference_spectrum(a, b)
    assert diff.shape == (64, 64)
    # Centred spectrum: (0, 0) is the (-1/2, -1/2) corner, the period-2 frequency.
    assert diff[0, 0] > 10 and abs(np.median(diff)) < abs(diff[0, 0])
    path = plot_spectrum(log_spectrum(a), tmp_path / "s.png", title="deconv")
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] > 200
    with pytest.raises(ValueError, match="same size"):
        difference_spectrum(a, a[:, :32])


def test_the_probe_callback_logs_a_score_during_training(tmp_path, vgg19):
    result = train(TrainConfig(size=32, batch=1, steps=4, decoder="deconv", log_every=1), out_dir=tmp_path,
                   style="ihc", progress=False, loss_network=vgg19, probe_every=2)
    assert [r.step for r in result.artifacts] == [0, 2, 4]
    assert result.artifacts[0].artifact_p2 > 5  # deconv at init
    with open(tmp_path / "logs" / "version_0" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert any(r.get("probe/artifact_p2") for r in rows)


def test_the_other_end_max_pooling_in_the_loss_teaches_a_resize_nearest_network_period_4(tmp_path, vgg19):
    """docs/seed.md section 8: with no uneven overlap in its decoder, a network still learns
    period-4 power when its loss network max-pools, and far less with average pooling at the same
    weights (which, as measured there, also stylises less; a control at ten times the style weight
    still leaves 5 dB between them). The encoder's downsampling kind did not change this in the
    docs' runs. Tiny: 30 steps at 32 px (at 12 the difference has not formed yet: -19.6 vs -22.2 dB)."""
    from models.artifacts import checkerboard_score
    from models.checkpoint import load_network
    from models.loss_network import build_loss_network

    scores = {}
    for pooling, net in (("max", vgg19), ("avg", build_loss_network("vgg19", pooling="avg"))):
        # The old defaults' encoder, no stability term, and the filters cut off at their Nyquist
        # frequency as when this was measured. The gap is a tiny run's and moves with the kernels:
        # on an AMD EPYC without AVX-512, 11.3 dB with two threads and 6.7 with one (the suite's);
        # today's 0.85 cutoff left 5.6, plain ReLUs 8.1. In fp32: the
        # claim is about the loss, and this tiny run's outcome moves with bf16 kernels, which
        # differ between CPUs (on an Intel Xeon with AMX-BF16, bf16 left 5.5 dB between them).
        train(TrainConfig(size=32, batch=1, steps=30, decoder="resize-nearest", loss_pooling=pooling, log_every=10,
                          checkpoint_every=10 ** 6, downsample="stride-conv", stability_weight=0.0, precision="32",
                          lowpass_cutoff=1.0),
              out_dir=tmp_path / pooling, style="ihc", progress=False,
              loss_network=net, probe_every=10 ** 6)
        trained, _ = load_network(tmp_path / pooling / "last.ckpt")
        with torch.no_grad():
            scores[pooling] = checkerboard_score(trained.eval()(photo()[None])[0])
    assert scores["max"][4] > scores["avg"][4] + 3, scores
