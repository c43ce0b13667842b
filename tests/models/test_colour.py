"""Keeping the photo's colours (models/colour.py), checked on 8-bit pixels as a PNG holds them."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from models.colour import colour_stats, match_histogram, preserve_luminance, to_ycbcr
from models.images import from_tensor, to_tensor
from models.stylize import stylize_tensor
from models.transformer_net import TransformerNet


def photo(w: int = 56, h: int = 40, name: str = "coffee") -> torch.Tensor:
    return to_tensor(Image.fromarray(getattr(skimage.data, name)()).resize((w, h)))


def pixels8(t: torch.Tensor) -> torch.Tensor:
    """What a PNG of t holds (clamped, rounded), back as floats."""
    return to_tensor(from_tensor(t))


@pytest.fixture(scope="module")
def untrained_output() -> torch.Tensor:
    """An untrained network's output: far from the photo's colours and partly outside 0..255."""
    torch.manual_seed(3)
    net = TransformerNet(decoder="deconv").eval()
    with torch.no_grad():
        y = net(photo()[None])[0]
    # Its texture, each channel stretched wide, so that the gamut clamp has work to do.
    mean, std = y.mean(dim=(1, 2), keepdim=True), y.std(dim=(1, 2), keepdim=True)
    return (y - mean) / std * torch.tensor([70.0, 50.0, 60.0])[:, None, None] + 128


def test_luminance_keeps_the_photos_chroma_within_one_8bit_level_on_every_pixel(untrained_output):
    p = photo()
    assert untrained_output.min() < 0 and untrained_output.max() > 255  # the clamp is exercised
    out = pixels8(preserve_luminance(untrained_output, p))
    chroma_out, chroma_photo = to_ycbcr(out)[1:], to_ycbcr(p)[1:]
    # Every pixel, none excluded: out-of-range luminance is clamped, not the RGB channels.
    assert (chroma_out - chroma_photo).abs().max() <= 1.0
    # And the luminance is the stylised image's wherever it fits: not merely the photo back.
    y_styl, y_out, y_photo = to_ycbcr(untrained_output)[0], to_ycbcr(out)[0], to_ycbcr(p)[0]
    inside = (y_styl > 20) & (y_styl < 200)  # far from any pixel's gamut limit... mostly
    assert (y_out - y_photo).abs().mean() > 20
    assert ((y_out - y_styl).abs()[inside] <= 1.0).float().mean() > 0.9


def test_luminance_through_stylize_tensor_at_every_strength():
    torch.manual_seed(0)
    net = TransformerNet(decoder="resize-nearest").eval()
    p = photo(45, 37)  # odd sizes
    plain = stylize_tensor(net, p)
    for strength in (0.0, 0.5, 1.0):
        out = pixels8(stylize_tensor(net, p, strength=strength, colors="luminance"))
        assert out.shape == p.shape
        assert (to_ycbcr(out)[1:] - to_ycbcr(p)[1:]).abs().max() <= 1.0
    assert torch.equal(pixels8(stylize_tensor(net, p, strength=0.0, colors="style")), p)
    assert torch.equal(stylize_tensor(net, p, strength=1.0, colors="style"), plain)


def test_histogram_matching_gives_the_photos_colour_mean_and_covariance(untrained_output):
    # The clamp to 0..255 after the affine map is the only departure from the photo's moments;
    # with chelsea's moderate colours it touches half a percent of the values (coffee's
    # near-black and near-white would clip 9%).
    p = photo(name="chelsea")
    out = match_histogram(untrained_output, p)
    assert out.min() >= 0 and out.max() <= 255
    clipped = ((out == 0) | (out == 255)).float().mean()
    mu_o, cov_o = colour_stats(out[None])
    mu_p, cov_p = colour_stats(p[None])
    mu_s, cov_s = colour_stats(untrained_output[None])
    assert clipped < 0.01
    assert (mu_o - mu_p).abs().max() < 0.5
    assert torch.linalg.norm(cov_o - cov_p) / torch.linalg.norm(cov_p) < 0.03
    assert torch.linalg.norm(cov_s - cov_p) / torch.linalg.norm(cov_p) > 1  # it had far to go
    # Structure kept: an affine colour map of the stylised image, so a least-squares affine fit
    # from the stylised pixels explains the output entirely, and the photo's pixels do not.
    def unexplained(source: torch.Tensor) -> float:
        a = np.c_[source.flatten(1).T.double().numpy(), np.ones(source[0].numel())]
        b = out.flatten(1).T.double().numpy()
        residual = b - a @ np.linalg.lstsq(a, b, rcond=None)[0]
        return float((residual ** 2).sum() / ((b - b.mean(0)) ** 2).sum())
    assert unexplained(untrained_output) < 0.01
    assert unexplained(p) > 0.5


def test_batches_and_bad_shapes():
    p = photo()
    batch = torch.stack([p, p.flip(-1)])
    out = preserve_luminance(batch.flip(0), batch)
    assert out.shape == batch.shape
    assert torch.allclose(out[0], preserve_luminance(p.flip(-1), p))
    with pytest.raises(ValueError, match="differ in shape"):
        preserve_luminance(p, p[:, :10])
    with pytest.raises(ValueError, match="RGB image"):
        match_histogram(p[:2], p[:2])
