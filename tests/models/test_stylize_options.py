"""The stylise options as the CLI and the API take them: strings in, checked values or a clear error."""

from __future__ import annotations

import pytest
import torch

from models.config import MAX_STYLES
from models.stylize import stylize_tensor
from models.stylize_options import COLOR_MODES, StylizeOptions, check_strength, parse_mix
from models.transformer_net import TransformerNet


def test_parse_from_form_fields():
    o = StylizeOptions.parse(style="1", strength="0.25", colors="luminance")
    assert (o.style, o.mix, o.strength, o.colors, o.selection) == (1, None, 0.25, "luminance", 1)
    o = StylizeOptions.parse(mix=" 0.5, 0.5 ", strength="", colors=None)
    assert o.selection == [0.5, 0.5] and o.strength == 1.0 and o.colors == "style"
    assert StylizeOptions.parse().selection is None
    assert StylizeOptions().to_dict() == {"style": None, "mix": None, "strength": 1.0, "colors": "style"}
    assert parse_mix([1, 0]) == (1.0, 0.0) and set(COLOR_MODES) == {"style", "luminance", "histogram"}


@pytest.mark.parametrize("fields, message", [
    ({"strength": "1.5"}, "strength must be a number between 0 and 1"),
    ({"strength": "-0.1"}, "between 0 and 1"),
    ({"strength": "nan"}, "between 0 and 1"),
    ({"strength": "strong"}, "between 0 and 1"),
    ({"colors": "sepia"}, "unknown colors 'sepia'; valid: style, luminance, histogram"),
    ({"style": "-1"}, "style must be a style's index"),
    ({"style": "two"}, "style must be a style's index"),
    ({"style": str(MAX_STYLES)}, f"from 0 to {MAX_STYLES - 1}"),
    ({"mix": "0.5,,0.5"}, "weights separated by commas"),
    ({"mix": "0.5;0.5"}, "is not a number"),
    ({"mix": "0,0"}, "cannot all be 0"),
    ({"mix": "1,-1"}, ">= 0"),
    ({"mix": "1,inf"}, ">= 0"),
    ({"mix": ",".join(["1"] * (MAX_STYLES + 1))}, f"at most {MAX_STYLES} styles"),
    ({"style": "0", "mix": "1,1"}, "not both"),
])
def test_bad_values_say_what_to_fix(fields, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        StylizeOptions.parse(**fields)


def test_strength_bounds_and_bool():
    assert check_strength(0) == 0.0 and check_strength(1) == 1.0
    with pytest.raises(ValueError):
        check_strength(True)


def test_a_one_style_network_takes_style_0_or_one_weight_only():
    torch.manual_seed(0)
    net = TransformerNet().eval()
    image = torch.rand(3, 24, 20) * 255
    base = stylize_tensor(net, image)
    assert torch.allclose(stylize_tensor(net, image, style=0), base)
    assert torch.allclose(stylize_tensor(net, image, style=[2.0]), base)
    with pytest.raises(ValueError, match="style"):
        stylize_tensor(net, image, style=1)
    with pytest.raises(ValueError, match="style"):
        stylize_tensor(net, image, style=[0.5, 0.5])


def _styled_net(styles: int, downsample: str, decoder: str = "resize-nearest") -> TransformerNet:
    """A network whose norms' scales and shifts differ per style, as training leaves them."""
    torch.manual_seed(0)
    net = TransformerNet(decoder=decoder, downsample=downsample, styles=styles).eval()
    with torch.no_grad():
        for m in net.modules():
            if hasattr(m, "mix") or isinstance(m, torch.nn.InstanceNorm2d):
                m.weight.normal_(1, 0.3)
                m.bias.normal_(0, 0.3)
    return net


@pytest.mark.parametrize("downsample, style, strength, colors", [
    ("stride-conv", 1, 1.0, "style"), ("blur-stride", [0.5, 0.5], 0.5, "luminance"), ("resize-down", 0, 1.0, "histogram")])
def test_styles_mixes_and_colours_in_tiles_equal_the_whole_image(downsample, style, strength, colors):
    net = _styled_net(2, downsample, decoder="deconv")
    image = torch.rand(3, 101, 70, generator=torch.Generator().manual_seed(1)) * 255  # odd sizes, 2 x 2 tiles
    whole = stylize_tensor(net, image, style=style, strength=strength, colors=colors)
    tiled = stylize_tensor(net, image, style=style, strength=strength, colors=colors, tile=64)
    # On 0..255: float32 rounding of the tiles' other summation order, up to 0.015 on an AVX2
    # CPU; a misplaced tile or blend is off by whole units.
    assert (tiled - whole).abs().max() < 5e-2


def test_each_style_and_a_mix_differ():
    net = _styled_net(2, "stride-conv")
    image = torch.rand(3, 40, 36, generator=torch.Generator().manual_seed(1)) * 255
    s0, s1, mix = (stylize_tensor(net, image, style=s) for s in (0, 1, [1, 1]))
    # The styles differ, and the mix is neither (a random network's outputs vary little).
    assert (s0 - s1).abs().mean() > 0.1
    assert (mix - s0).abs().mean() > 0.03 and (mix - s1).abs().mean() > 0.03
    assert torch.equal(stylize_tensor(net, image), s0)  # no style given: the default, style 0
    with pytest.raises(ValueError, match="style 2 does not exist"):
        stylize_tensor(net, image, style=2)
    with pytest.raises(ValueError, match="needs 2 weight"):
        stylize_tensor(net, image, style=[1, 1, 1])
