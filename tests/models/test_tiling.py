"""Tiled stylising agrees with the whole-image pass: whole-image instance-norm statistics,
halos wider than the layers' reach, tiles on the network's pixel grid."""

import pytest
import torch
from PIL import Image

from models.bench import psnr
from models.tiling import UNTILED_BYTES_PER_PIXEL, choose_tile, stylize_tiled
from models.transformer_net import TransformerNet
from models.vocabulary import DECODER_INFO


def _net(decoder: str, **kwargs) -> TransformerNet:
    torch.manual_seed(0)
    net = TransformerNet(decoder=decoder, **kwargs).eval()
    with torch.no_grad():  # give the norms' scale and shift a part to play, as training does
        for m in net.modules():
            if isinstance(m, torch.nn.InstanceNorm2d):
                m.weight.normal_(1, 0.3)
                m.bias.normal_(0, 0.3)
    return net


@pytest.mark.parametrize("decoder", [*DECODER_INFO, "resize-nearest,deconv"])
def test_tiles_equal_the_whole_image_for_every_decoder(decoder):
    net = _net(decoder)
    image = torch.rand(1, 3, 203, 150, generator=torch.Generator().manual_seed(1)) * 255  # odd sizes
    with torch.inference_mode():
        whole = net(image)
    tiled = stylize_tiled(net, image, tile=64)  # 4 x 3 tiles, edges and corners included
    assert tiled.shape == whole.shape
    assert psnr(tiled, whole) >= 60
    assert (tiled - whole).abs().max() < 1e-2


@pytest.mark.parametrize("downsample", ["default", "lowpass-stride"])
def test_tiles_equal_the_whole_image_for_todays_default_network(downsample):
    """The defaults (models/config.py): blur-stride, resize-lowpass and filtered ReLUs, whose
    low-pass filters widen every stage's reach (models/tiling.py's halos) and run in bands on
    the residual blocks' whole map; and the same with lowpass-stride, the widest encoder."""
    from models.config import DEFAULTS

    downsample = DEFAULTS.downsample if downsample == "default" else downsample
    net = _net(DEFAULTS.decoder, downsample=downsample, filtered_relu=DEFAULTS.filtered_relu)
    image = torch.rand(1, 3, 203, 150, generator=torch.Generator().manual_seed(1)) * 255
    with torch.inference_mode():
        whole = net(image)
    tiled = stylize_tiled(net, image, tile=64)
    assert psnr(tiled, whole) >= 60 and (tiled - whole).abs().max() < 1e-2, (tiled - whole).abs().max()
    # The residual stage's filtered ReLUs in bands (a map taller than one band): the same map.
    from models.blocks import FilteredReLU
    from models.tiling import _filtered_in_bands

    x = torch.randn(1, 8, 45, 20, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(_filtered_in_bands(FilteredReLU(), x, band=8), FilteredReLU()(x), atol=1e-5)


def test_per_tile_statistics_would_not_agree():
    """The reason for the whole-image statistics: a tile normalised on its own comes out
    differently (a random network's outputs vary little, so compare differences)."""
    net = _net("resize-nearest")
    image = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(2)) * 255
    image[..., 64:] *= 0.15  # a bright left half, a dark right half
    with torch.inference_mode():
        whole = net(image)[..., :64]
        left_alone = net(image[..., :64])
    tiled = stylize_tiled(net, image, tile=64)[..., :64]
    assert (tiled - whole).abs().mean() < 1e-3
    assert (left_alone - whole).abs().mean() > 0.1


def test_tiling_is_chosen_by_the_memory_budget():
    budget = UNTILED_BYTES_PER_PIXEL * 1000 * 1000
    assert choose_tile(1000, 1000, memory_budget=budget) is None
    assert choose_tile(1000, 1001, memory_budget=budget) == 512
    assert choose_tile(100, 100, tile=128) == 128
    with pytest.raises(ValueError, match="multiple of 4"):
        choose_tile(100, 100, tile=130)


@pytest.mark.slow
def test_a_1024_px_photo_tiled_agrees_with_the_whole(tmp_path):
    from skimage import data

    net = _net("deconv")
    photo = Image.fromarray(data.astronaut()).resize((1024, 1024))
    image = torch.from_numpy(__import__("numpy").asarray(photo, dtype="float32")).permute(2, 0, 1)[None]
    with torch.inference_mode():
        whole = net(image)
    assert psnr(stylize_tiled(net, image, tile=512), whole) >= 40
