"""The stability loss (issue 12, video): the output should not change when the input is shifted
by one pixel or lightly noised. models/losses.py stability_loss defines it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from models.config import STABILITY_NOISE_STD, TrainConfig
from models.builtin_images import load_style
from models.lightning_module import StyleTransferModule, style_png_from_image
from models.loss_network import build_loss_network
from models.losses import stability_loss
from models.training import train
from models.transformer_net import TransformerNet


def photos(n: int = 2, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0)) * 255


def test_zero_for_a_shift_equivariant_network_that_ignores_no_noise():
    pointwise = torch.nn.Conv2d(3, 3, 1)  # a 1x1 conv commutes with every shift
    zero = torch.zeros(2, 3, 32, 32)
    with torch.no_grad():
        assert stability_loss(pointwise, photos(), noise=zero) == 0
        assert stability_loss(pointwise, photos(), noise=torch.randn(2, 3, 32, 32) * STABILITY_NOISE_STD) > 0


def test_the_transfer_network_is_stable_on_a_flat_image_and_not_on_a_photo():
    torch.manual_seed(0)
    net = TransformerNet(residual_blocks=1).eval()
    zero = torch.zeros(2, 3, 32, 32)
    flat = torch.full((2, 3, 32, 32), 120.0)  # every shift of a flat image is itself
    with torch.no_grad():
        assert stability_loss(net, flat, noise=zero) < 1e-6
        on_photos = stability_loss(net, photos(), noise=zero)
        assert on_photos > 0.01  # stride-2 convs: a one-pixel shift changes the output (untrained: a little)
        noisy = stability_loss(net, photos(), noise=torch.randn(2, 3, 32, 32) * STABILITY_NOISE_STD)
        assert noisy > on_photos


def test_gradients_reach_the_network():
    torch.manual_seed(0)
    net = TransformerNet(residual_blocks=1)
    stability_loss(net, photos(1), noise=torch.zeros(1, 3, 32, 32)).backward()
    assert net.encoder[3][1].weight.grad.abs().sum() > 0


def test_the_noise_is_a_function_of_seed_and_step_and_each_rank_takes_its_slice():
    cfg = TrainConfig(size=32, batch=4, seed=3, loss_network="vgg19-random", stability_weight=1.0)
    png = style_png_from_image(load_style("ihc")[1].resize((32, 32)))
    module = StyleTransferModule(cfg, style_name="ihc", style_png=png, loss_network=build_loss_network("vgg19-random"))
    whole = module.stability_noise(5, torch.zeros(4, 3, 32, 32))
    assert torch.equal(whole, module.stability_noise(5, torch.zeros(4, 3, 32, 32)))
    assert not torch.equal(whole, module.stability_noise(6, torch.zeros(4, 3, 32, 32)))
    assert float(whole.std()) == pytest.approx(STABILITY_NOISE_STD, rel=0.1)
    module._trainer = SimpleNamespace(global_rank=1)  # rank 1 of 2: the second half of the global batch
    assert torch.equal(module.stability_noise(5, torch.zeros(2, 3, 32, 32)), whole[2:])


def test_subgrid_shifts_cover_every_shift_off_the_grid_and_depend_on_seed_and_step_only():
    png = style_png_from_image(load_style("ihc")[1].resize((32, 32)))

    def module(**kw) -> StyleTransferModule:
        cfg = TrainConfig(size=32, batch=2, loss_network="vgg19-random", **kw)
        return StyleTransferModule(cfg, style_name="ihc", style_png=png, loss_network=build_loss_network("vgg19-random"))

    one, sub = module(), module(stability_shift="subgrid", seed=3)
    assert {one.stability_shift(step) for step in range(50)} == {(1, 1)}  # the old behaviour, and stored configs'
    shifts = [sub.stability_shift(step) for step in range(400)]
    assert set(shifts) == {(dy, dx) for dy in range(4) for dx in range(4)} - {(0, 0)}
    again, other = module(stability_shift="subgrid", seed=3), module(stability_shift="subgrid", seed=4)
    assert shifts == [again.stability_shift(s) for s in range(400)]
    assert shifts != [other.stability_shift(s) for s in range(400)]
    assert TrainConfig.from_stored({"size": 32}).stability_shift == "one"
    with pytest.raises(ValueError, match="unknown stability shift 'two'; valid: one, subgrid"):
        TrainConfig(stability_shift="two")
    # The term at a shift compares the output with the output of the shifted input.
    pointwise = torch.nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        for shift in ((0, 3), (2, 1), (3, 3)):
            assert stability_loss(pointwise, photos(), noise=torch.zeros(2, 3, 32, 32), shift=torch.tensor(shift),
                                  span=3) == 0
    # "one" is the input less its first row and column, as before the shifts were a setting.
    torch.manual_seed(0)
    net, x, zero = TransformerNet(residual_blocks=1).eval(), photos(), torch.zeros(2, 3, 32, 32)
    with torch.no_grad():
        y = net(x)
        before = torch.nn.functional.mse_loss(y[..., 1:, 1:], net(x[..., 1:, 1:]))
        assert torch.equal(stability_loss(net, x, noise=zero, output=y) - torch.nn.functional.mse_loss(net(x), y),
                           before)


def test_a_run_with_the_stability_weight_logs_the_term_and_adds_it(tmp_path):
    random_net = build_loss_network("vgg19-random")
    cfg = TrainConfig(size=32, batch=1, steps=2, log_every=1, loss_network="vgg19-random", stability_weight=0.5,
                      precision="32")  # the sum checked to 1e-4: fp32 arithmetic
    result = train(cfg, out_dir=tmp_path / "s", style="ihc", progress=False, loss_network=random_net, probe_every=1000)
    for row in result.losses:
        assert row["stability"] > 0
        parts = cfg.content_weight * row["content"] + cfg.style_weight * row["style"] + cfg.tv_weight * row["tv"]
        assert row["loss"] == pytest.approx(parts + 0.5 * row["stability"], rel=1e-4)
    plain = train(cfg.replace(stability_weight=0.0), out_dir=tmp_path / "p", style="ihc", progress=False,
                  loss_network=random_net, probe_every=1000)
    assert "stability" not in plain.losses[0]


def test_a_compiled_term_is_traced_once_whatever_the_shift():
    from torch._dynamo.testing import CompileCounter

    net, counter = TransformerNet(residual_blocks=1), CompileCounter()
    term = torch.compile(lambda x, n, s: stability_loss(net, x, noise=n, shift=s, span=3), backend=counter)
    x = photos()
    for shift in ((0, 1), (1, 0), (2, 3), (3, 3), (1, 1), (0, 3)):
        term(x, torch.zeros_like(x), torch.tensor(shift))
    assert counter.frame_count == 1
