import pytest
import torch

from models import DECODERS, TransformerNet, parse_decoder
from models.blocks import register_decoder

MIXES = [[name] for name in DECODERS] + [["resize-nearest", "deconv"], ["deconv", "subpixel"]]


@pytest.mark.parametrize("decoder", MIXES, ids=lambda d: ",".join(d))
@pytest.mark.parametrize("hw", [(64, 64), (32, 48), (67, 45), (130, 97), (5, 3)])
def test_every_decoder_keeps_the_input_size(decoder, hw):
    net = TransformerNet(decoder=decoder)
    x = torch.rand(1, 3, *hw) * 255
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


def test_every_stage_doubles_the_size():
    for name, d in DECODERS.items():
        layer = d.build(8, 4)
        assert layer(torch.rand(1, 8, 7, 9)).shape == (1, 4, 14, 18), name


def test_names_and_mixes_parse():
    assert parse_decoder("deconv") == ("deconv", "deconv")
    assert parse_decoder("resize-nearest,deconv") == ("resize-nearest", "deconv")
    assert parse_decoder(["subpixel", "deconv4"]) == ("subpixel", "deconv4")
    assert TransformerNet(decoder="resize-nearest,deconv").decoder_label == "resize-nearest,deconv"
    assert TransformerNet(decoder=["deconv", "deconv"]).decoder_label == "deconv"


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError) as e:
        TransformerNet(decoder="transposed")
    for name in DECODERS:
        assert name in str(e.value)
    with pytest.raises(ValueError, match="one per upsampling stage"):
        parse_decoder("deconv,deconv,deconv")


def test_registry_refuses_a_duplicate_name():
    with pytest.raises(ValueError, match="already registered"):
        register_decoder("deconv")(lambda i, o: None)


def test_layers_are_the_ones_in_the_design_table():
    deconv = DECODERS["deconv"].build(4, 4)
    assert (deconv.kernel_size, deconv.stride, deconv.padding, deconv.output_padding) == ((3, 3), (2, 2), (1, 1), (1, 1))
    deconv4 = DECODERS["deconv4"].build(4, 4)
    assert (deconv4.kernel_size, deconv4.stride, deconv4.padding) == ((4, 4), (2, 2), (1, 1))
    assert DECODERS["resize-nearest"].build(4, 4)[0].mode == "nearest"
    assert DECODERS["resize-bilinear"].build(4, 4)[0].mode == "bilinear"


def test_subpixel_icnr_init_is_nearest_upsampling_then_conv():
    layer = DECODERS["subpixel"].build(6, 3)
    conv = layer[1]
    w = conv.weight.view(3, 4, 6, 3, 3)
    assert torch.equal(w, w[:, :1].expand_as(w))  # the four sub-pixel kernels are equal
    x = torch.rand(1, 6, 5, 7)
    y = layer(x)
    # Each 2x2 output block is constant at init: no sub-pixel pattern before training.
    assert torch.allclose(y[..., 0::2, 0::2], y[..., 1::2, 1::2])
    assert torch.allclose(y[..., 0::2, 0::2], y[..., 0::2, 1::2])


def test_same_seed_gives_the_same_shared_weights_whatever_the_decoder():
    nets = []
    for decoder in ["deconv", "resize-nearest", "subpixel", "resize-nearest,deconv"]:
        torch.manual_seed(7)
        nets.append(TransformerNet(decoder=decoder).shared_state_dict())
    for other in nets[1:]:
        assert other.keys() == nets[0].keys()
        for k in nets[0]:
            assert torch.equal(nets[0][k], other[k]), k
    torch.manual_seed(8)
    different = TransformerNet(decoder="deconv").shared_state_dict()
    assert not torch.equal(different["encoder.0.1.weight"], nets[0]["encoder.0.1.weight"])


def test_every_name_in_the_vocabulary_has_a_builder_and_no_more():
    from models.vocabulary import DECODER_INFO

    assert list(DECODERS) == list(DECODER_INFO)


def test_config_and_vocabulary_import_without_torch():
    import subprocess
    import sys

    code = "import sys, models.config, models.vocabulary; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


@pytest.mark.parametrize("name", ["deconv-zoh", "resize-lowpass"])
def test_the_artifact_free_decoders_map_a_constant_to_a_constant_for_any_weights(name):
    """Sugawara et al.'s condition: whatever the learned weights (drawn at random here, at
    several scales, biases too), a flat input gives a flat output: no periodic pattern."""
    for seed in range(5):
        torch.manual_seed(seed)
        layer = DECODERS[name].build(6, 4)
        with torch.no_grad():
            for p in layer.parameters():
                p.copy_(torch.randn_like(p) * 10 ** (seed - 2))
            y = layer(torch.full((1, 6, 9, 11), 3.0))
        core = y[..., 4:-4, 4:-4]  # away from the padded borders
        assert torch.allclose(core, core[..., :1, :1].expand_as(core), rtol=1e-4, atol=1e-4), (name, seed)


@pytest.mark.parametrize("name", ["deconv-zoh", "resize-lowpass"])
def test_the_artifact_free_decoders_overlap_evenly_alone_and_stacked(name):
    from models.artifacts.overlap import overlap_map, overlap_period

    assert overlap_period(overlap_map(name)) == 1
    assert overlap_period(overlap_map([name, name])) == 1
    assert overlap_period(overlap_map("deconv")) == 2  # the layer the hold is added to, alone


@pytest.mark.parametrize("name", ["deconv-zoh", "resize-lowpass"])
def test_the_artifact_free_decoders_score_like_a_photo_at_random_initialisation(name):
    """The whole network at init, seeds 0..2, on a photo: the period-2/4/8 scores stay at the
    photo's own level (deconv's, for contrast, does not)."""
    import numpy as np
    import skimage.data

    from models.artifacts import checkerboard_score

    photo = torch.tensor(skimage.data.astronaut()[:128, :128]).permute(2, 0, 1).float()[None]
    own = checkerboard_score(photo[0])
    for seed in range(3):
        torch.manual_seed(seed)
        with torch.no_grad():
            s = checkerboard_score(np.asarray(TransformerNet(decoder=name)(photo)[0].clamp(0, 255)))
        assert all(s[p] < max(own[p], 0) + 3 for p in (2, 4, 8)), (name, seed, s, own)
    torch.manual_seed(0)
    with torch.no_grad():
        deconv = checkerboard_score(TransformerNet(decoder="deconv")(photo)[0])
    assert deconv[2] > own[2] + 10


def test_the_lowpass_interpolates_constants_and_ramps_exactly():
    from models.blocks import LowpassUpsample, lowpass_phases

    phases = lowpass_phases()
    assert torch.allclose(phases.sum(dim=1), torch.ones(2))
    ramp = torch.arange(12.0).view(1, 1, 1, 12).expand(1, 1, 6, 12)
    up = LowpassUpsample()(ramp)[0, 0, 2, 6:-6]  # away from the edges
    step = up[1:] - up[:-1]
    assert torch.allclose(step, torch.full_like(step, 0.5), atol=1e-5)  # no period-2 ripple on a gradient


def test_full_resolution_blocks_add_only_their_own_weights():
    """models/transformer_net.py: residual blocks after the decoder (TrainConfig.full_res_blocks),
    built last: under one seed every other weight is the network's without them, and a config
    or checkpoint that never named them means none."""
    import torch

    from models.config import TrainConfig
    from models.transformer_net import TransformerNet

    torch.manual_seed(0)
    plain = TransformerNet().state_dict()
    torch.manual_seed(0)
    net = TransformerNet(full_res_blocks=2)
    extra = {k for k in net.state_dict() if k not in plain}
    assert extra and all(k.startswith("full_res.") for k in extra)
    assert all(torch.equal(plain[k], net.state_dict()[k]) for k in plain)
    assert net(torch.rand(1, 3, 30, 35) * 255).shape == (1, 3, 30, 35)
    assert TrainConfig.from_stored({"size": 32}).full_res_blocks == 0


def test_the_lowpass_downsample_is_the_upsample_s_adjoint_and_keeps_constants():
    """models/blocks.py LowpassDownsample: the transpose of LowpassUpsample (scaled by 1/4 so a
    constant keeps its value), exactly, away from the edges its replication touches."""
    from models.blocks import LowpassDownsample, LowpassUpsample

    torch.manual_seed(0)
    x, y = torch.zeros(1, 2, 16, 16), torch.zeros(1, 2, 32, 32)
    x[..., 4:-4, 4:-4] = torch.randn(1, 2, 8, 8)
    y[..., 8:-8, 8:-8] = torch.randn(1, 2, 16, 16)
    up, down = LowpassUpsample(), LowpassDownsample()
    assert torch.allclose((up(x) * y).sum(), 4 * (x * down(y)).sum(), rtol=1e-4)
    assert torch.allclose(down(torch.full((1, 3, 8, 10), 7.0)), torch.full((1, 3, 4, 5), 7.0))


def test_a_filtered_relu_folds_back_far_less_of_its_harmonics():
    """models/blocks.py FilteredReLU: a cosine below the coarse grid's Nyquist frequency; the
    ReLU's second harmonic lies above it and, at the coarse rate, folds back to n - 2b. Filtered,
    at least 10 dB less of it folds back (measured: 14 dB)."""
    import math

    from models.blocks import FilteredReLU

    n = 64
    for b in (20, 24):
        x = torch.cos(2 * math.pi * b / n * torch.arange(n, dtype=torch.float32)).expand(1, 1, 8, n).contiguous()
        power = {name: torch.fft.rfft(f(x)[0, 0, 4]).abs() ** 2 for name, f in (("plain", torch.relu),
                                                                                   ("filtered", FilteredReLU()))}
        folded = n - 2 * b
        assert 10 * math.log10(power["plain"][folded] / power["filtered"][folded]) > 10, (b, power)


def test_a_filtered_relu_under_bf16_autocast_is_its_float32_self_rounded_once():
    """Under the CPU's bf16 autocast the filters run in float32, and so does the ReLU at twice
    the resolution between them: one conversion in, one out, nothing rounded in between."""
    from models.blocks import FilteredReLU

    act = FilteredReLU()
    x = torch.randn(2, 8, 12, 16, generator=torch.Generator().manual_seed(0)).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = act(x)
    assert y.dtype == torch.bfloat16
    assert torch.equal(y, act(x.float()).bfloat16())


def test_filtered_relus_change_no_weight_and_travel_with_the_config():
    """TrainConfig.filtered_relu: the same state_dict under a seed (the filters are fixed), any
    size in and out, and a stored config that never named it means plain ReLUs."""
    from models.blocks import FilteredReLU
    from models.config import TrainConfig
    from models.transformer_net import TransformerNet

    torch.manual_seed(0)
    plain = TransformerNet().state_dict()
    torch.manual_seed(0)
    net = TransformerNet.for_config(TrainConfig(filtered_relu=True))
    assert sum(isinstance(m, FilteredReLU) for m in net.modules()) == 2 + 5 + 1  # encoder, residuals, decoder
    assert plain.keys() == net.state_dict().keys()
    assert all(torch.equal(plain[k], v) for k, v in net.state_dict().items())
    assert net(torch.rand(1, 3, 30, 35) * 255).shape == (1, 3, 30, 35)
    assert TrainConfig.from_stored({"size": 32}).filtered_relu is False
    with pytest.raises(ValueError, match="filtered_relu"):
        TrainConfig(filtered_relu="yes")


def test_a_lower_cutoff_keeps_constants_and_ramps_folds_back_less_and_travels_with_the_config(tmp_path):
    """TrainConfig.lowpass_cutoff (models/blocks.py lowpass_phases): every low-pass filter of the
    network cut off lower, still exact on constants and ramps, passing less just under the
    Nyquist frequency; a checkpoint's network loads with its own filters, and one stored before
    the setting means today's filters (cutoff 1)."""
    import math

    from models.blocks import FilteredReLU, LowpassDownsample, LowpassStride, LowpassUpsample, lowpass_phases
    from models.checkpoint import load_network
    from models.config import TrainConfig
    from models.training import train

    for cutoff in (1.0, 0.7, 0.5):
        assert torch.allclose(lowpass_phases(cutoff=cutoff).sum(dim=1), torch.ones(2))
        up = LowpassUpsample()
        up.set_cutoff(cutoff)
        ramp = torch.arange(12.0).view(1, 1, 1, 12).expand(1, 1, 6, 12)
        step = up(ramp)[0, 0, 2, 6:-6].diff()
        assert torch.allclose(step, torch.full_like(step, 0.5), atol=1e-5), cutoff
    # A cosine just under the coarse Nyquist frequency, through a filtered ReLU: its second
    # harmonic folds back; with the margin less of it does.
    n, b = 64, 28
    x = torch.cos(2 * math.pi * b / n * torch.arange(n, dtype=torch.float32)).expand(1, 1, 8, n).contiguous()
    folded = {}
    for cutoff in (1.0, 0.7):
        f = FilteredReLU()
        for m in f.modules():
            if hasattr(m, "set_cutoff"):
                m.set_cutoff(cutoff)
        folded[cutoff] = float(torch.fft.rfft(f(x)[0, 0, 4]).abs()[n - 2 * b] ** 2)
    assert 10 * math.log10(folded[1.0] / folded[0.7]) > 6, folded
    def filters(cutoff: float) -> list[torch.Tensor]:
        net = TransformerNet.for_config(TrainConfig(lowpass_cutoff=cutoff, downsample="lowpass-stride"))
        return [m.lowpass if isinstance(m, LowpassStride) else m.kernel for m in net.modules()
                if isinstance(m, (LowpassUpsample, LowpassDownsample, LowpassStride))]

    lower, today = filters(0.7), filters(1.0)
    assert len(lower) == 2 * 8 + 2 + 2  # the filtered ReLUs' pairs, the decoder's two, the encoder's two
    assert not any(torch.equal(a, b) for a, b in zip(lower, today))
    run = train(TrainConfig(size=32, batch=1, steps=1, lowpass_cutoff=0.7, loss_network="vgg19-random"),
                out_dir=tmp_path, style="ihc", progress=False)
    loaded, info = load_network(run.checkpoint)
    assert info.config.lowpass_cutoff == 0.7 and loaded.lowpass_cutoff == 0.7
    assert TrainConfig.from_stored({"size": 32}).lowpass_cutoff == 1.0
    with pytest.raises(ValueError, match="lowpass_cutoff must be a number between 0.25 and 1"):
        TrainConfig(lowpass_cutoff=1.5)
