"""The encoder's selectable downsampling and the loss network's pooling (issue 13, "Beyond
the article"): names, validation, and what old configs mean."""

import pytest

from models.config import DEFAULTS, MAX_STYLES, TrainConfig
from models.vocabulary import DOWNSAMPLE_INFO, LOSS_POOLINGS, downsample_label, parse_downsample


def test_downsample_names_and_mixes_parse():
    assert list(DOWNSAMPLE_INFO) == ["stride-conv", "blur-stride", "lowpass-stride", "resize-down"]
    assert parse_downsample("blur-stride") == ("blur-stride", "blur-stride")
    assert parse_downsample("stride-conv, resize-down") == ("stride-conv", "resize-down")
    assert parse_downsample(["resize-down"]) == ("resize-down", "resize-down")
    assert downsample_label(("blur-stride", "blur-stride")) == "blur-stride"
    assert downsample_label(("stride-conv", "resize-down")) == "stride-conv,resize-down"


def test_bad_downsample_names_say_what_is_valid():
    with pytest.raises(ValueError, match="unknown downsample 'maxpool'; valid names: stride-conv, blur-stride"):
        parse_downsample("maxpool")
    with pytest.raises(ValueError, match="downsample needs one name or 2"):
        parse_downsample("stride-conv,stride-conv,stride-conv")


def test_config_fields_default_canonicalise_and_validate():
    assert (DEFAULTS.decoder, DEFAULTS.downsample, DEFAULTS.loss_pooling, DEFAULTS.stability_weight) == \
        ("resize-lowpass", "blur-stride", "max", 1000.0)
    assert LOSS_POOLINGS == ("max", "avg") and MAX_STYLES == 32
    cfg = TrainConfig(downsample="blur-stride,blur-stride", loss_pooling="avg", stability_weight=2)
    assert cfg.downsample == "blur-stride" and cfg.downsample_stages == ("blur-stride",) * 2
    assert cfg.stability_weight == 2.0 and isinstance(cfg.stability_weight, float)
    with pytest.raises(ValueError, match="unknown loss pooling 'mean'; valid: max, avg"):
        TrainConfig(loss_pooling="mean")
    with pytest.raises(ValueError, match="stability_weight must be a number between 0"):
        TrainConfig(stability_weight=-1.0)
    with pytest.raises(ValueError, match="stability_weight"):
        TrainConfig(stability_weight=float("nan"))
    with pytest.raises(ValueError, match="unknown downsample"):
        TrainConfig(downsample="nope")


def test_a_config_stored_before_these_fields_loads_as_it_was_trained_not_with_todays_defaults():
    old = {k: v for k, v in TrainConfig(size=32).to_dict().items()
           if k not in ("downsample", "loss_pooling", "stability_weight", "precision")}
    cfg = TrainConfig.from_stored(old)
    assert (cfg.downsample, cfg.loss_pooling, cfg.stability_weight, cfg.precision) == ("stride-conv", "max", 0.0, "32")
    assert TrainConfig.from_stored(cfg.to_dict()) == cfg
    assert TrainConfig.from_dict(old).downsample == DEFAULTS.downsample  # a new request's unset field: today's


# --- the layers ---------------------------------------------------------------------------

import torch  # noqa: E402

from models.blocks import DOWNSAMPLES, register_downsample  # noqa: E402
from models.transformer_net import TransformerNet  # noqa: E402

KINDS = [[n] for n in DOWNSAMPLE_INFO] + [["stride-conv", "blur-stride"]]


def test_every_name_in_the_vocabulary_has_a_builder_and_no_more():
    assert list(DOWNSAMPLES) == list(DOWNSAMPLE_INFO)
    with pytest.raises(ValueError, match="already registered"):
        register_downsample("stride-conv")(lambda i, o: None)
    with pytest.raises(ValueError, match="not in models/vocabulary.py"):
        register_downsample("maxpool")(lambda i, o: None)


@pytest.mark.parametrize("name", list(DOWNSAMPLE_INFO))
def test_every_kind_halves_the_size_with_the_same_conv_shape(name):
    layer = DOWNSAMPLES[name].build(6, 8)
    assert layer(torch.rand(2, 6, 16, 12)).shape == (2, 8, 8, 6)
    assert {k: tuple(v.shape) for k, v in layer.state_dict().items()} == {"1.weight": (8, 6, 3, 3), "1.bias": (8,)}


@pytest.mark.parametrize("downsample", KINDS, ids=lambda d: ",".join(d))
@pytest.mark.parametrize("hw", [(32, 32), (67, 45), (5, 3)])
def test_every_downsampling_keeps_the_input_size(downsample, hw):
    net = TransformerNet(downsample=downsample, residual_blocks=1)
    assert net.downsample_label == downsample_label(parse_downsample(downsample))
    with torch.no_grad():
        assert net(torch.rand(1, 3, *hw) * 255).shape == (1, 3, *hw)


def test_same_seed_shares_every_weight_whatever_the_downsampling_and_decoder():
    states, outputs = [], []
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 255
    for downsample, decoder in [("stride-conv", "deconv"), ("blur-stride", "resize-nearest"),
                                ("resize-down", "subpixel"), ("stride-conv,resize-down", "deconv")]:
        torch.manual_seed(7)
        net = TransformerNet(downsample=downsample, decoder=decoder, residual_blocks=1)
        states.append(net.shared_state_dict())
        with torch.no_grad():
            outputs.append(net(x))
    for other in states[1:]:
        assert other.keys() == states[0].keys()
        assert all(torch.equal(states[0][k], other[k]) for k in other)
    # the same weights, different layers: different outputs
    assert not torch.allclose(outputs[0], outputs[1]) and not torch.allclose(outputs[1], outputs[2])


def identity_conv(name: str) -> torch.nn.Module:
    """A 1-channel layer of this kind whose 3x3 conv passes its input through unchanged."""
    layer = DOWNSAMPLES[name].build(1, 1)
    with torch.no_grad():
        layer[1].weight.zero_()
        layer[1].weight[0, 0, 1, 1] = 1.0
        layer[1].bias.zero_()
    return layer


def test_blur_stride_is_the_binomial_blur_of_the_stride_one_conv_subsampled():
    layer = identity_conv("blur-stride")
    with torch.no_grad():
        x = torch.zeros(1, 1, 8, 8)
        x[0, 0, 4, 4] = 16.0
        y = layer(x)
    # the impulse at (4, 4) lands on output (2, 2) with the blur's centre weight 4/16
    assert y[0, 0, 2, 2] == pytest.approx(4.0) and y.sum() == pytest.approx(4.0)


def test_lowpass_stride_is_the_filtered_relus_low_pass_of_the_stride_one_conv():
    from models.blocks import LowpassDownsample, runs_fp32_filters

    layer = identity_conv("lowpass-stride")
    with torch.no_grad():
        x = torch.rand(2, 1, 16, 12, generator=torch.Generator().manual_seed(0))
        assert torch.allclose(layer(x), LowpassDownsample()(x))
        assert layer(torch.full((1, 1, 8, 8), 3.0)).sub(3.0).abs().max() < 1e-5  # a constant stays
    assert list(layer.state_dict()) == ["1.weight", "1.bias"]  # the filter is no weight
    assert runs_fp32_filters(TransformerNet(downsample="lowpass-stride", residual_blocks=1))


def test_resize_down_averages_2x2_before_its_conv():
    layer = identity_conv("resize-down")
    with torch.no_grad():
        x = torch.arange(16.0).view(1, 1, 4, 4)
        assert torch.equal(layer(x), torch.nn.functional.avg_pool2d(x, 2))


def test_loss_pooling_reaches_the_loss_network():
    from models.lightning_module import StyleTransferModule, style_png_from_image
    from models.builtin_images import load_style
    from models.loss_network import build_loss_network

    png = style_png_from_image(load_style("ihc")[1].resize((32, 32)))
    cfg = TrainConfig(size=32, batch=1, loss_network="vgg19-random", loss_pooling="avg", downsample="blur-stride")
    module = StyleTransferModule(cfg, style_name="ihc", style_png=png)
    assert module.loss_net.pooling == "avg"
    assert isinstance(module.loss_net.features[module.loss_net.layer_names.index("pool1")], torch.nn.AvgPool2d)
    assert module.net.downsample == ("blur-stride", "blur-stride")
    with pytest.raises(ValueError, match="pools with 'max'.*loss_pooling='avg'"):
        StyleTransferModule(cfg, style_name="ihc", style_png=png, loss_network=build_loss_network("vgg19-random"))
