"""Several styles in one network (issue 12): conditional instance norm, the seeded per-step
style schedule, checkpoints that name their styles, and one-style checkpoints of the code
before it still loading. Tiny sizes: a CPU runs them in seconds."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from models.checkpoint import CheckpointError, load_network, read_checkpoint
from models.config import MAX_STYLES, TrainConfig
from models.data import load_styles, style_for_step
from models.lightning_module import StyleTransferModule, style_png_from_image
from models.preview import probe_batch
from models.quality import distances
from models.training import train
from models.transformer_net import TransformerNet

OLD = json.loads((Path(__file__).parent / "data" / "one_style_checkpoint_v1.json").read_text())


# --- the schedule ----------------------------------------------------------------------------


def test_the_style_schedule_is_a_pure_balanced_function_of_seed_and_step():
    n = 5
    a = [style_for_step(3, s, n) for s in range(40)]
    assert a == [style_for_step(3, s, n) for s in range(40)]  # nothing but (seed, step) decides
    for r in range(8):  # every round of n steps visits every style once
        assert sorted(a[r * n:(r + 1) * n]) == list(range(n))
    assert a != [style_for_step(4, s, n) for s in range(40)]  # the seed changes the order
    assert a[:n] != a[n:2 * n] or a[n:2 * n] != a[2 * n:3 * n]  # not one fixed cycle
    assert {style_for_step(s, 7, 1) for s in range(5)} == {0}
    with pytest.raises(ValueError):
        style_for_step(0, 0, 0)


# --- the network -------------------------------------------------------------------------------


def test_a_one_style_network_is_the_network_of_the_code_before_several_styles():
    torch.manual_seed(OLD["seeded_net"]["seed"])
    net = TransformerNet(decoder=OLD["seeded_net"]["decoder"]).eval()
    assert {f"net.{k}": list(v.shape) for k, v in net.state_dict().items()} == OLD["state_dict_shapes"]
    x = torch.rand(1, 3, 29, 37, generator=torch.Generator().manual_seed(1)) * 255
    with torch.no_grad():
        y = net(x)
    # Recorded on one CPU; another sums in another order (AVX2 against AVX-512 kernels), which
    # moves float32 outputs by ~1e-7 of their value. Another network differs by far more.
    assert y.flatten()[:8].tolist() == pytest.approx(OLD["seeded_net"]["output_first"], rel=1e-5)
    assert float(y.double().sum()) == pytest.approx(OLD["seeded_net"]["output_sum"], rel=1e-6)


def test_a_one_style_checkpoint_written_before_several_styles_loads(tmp_path):
    meta = dict(OLD["checkerless"], style_png=base64.b64decode(OLD["checkerless"]["style_png"]))
    torch.manual_seed(0)
    weights = TransformerNet(decoder=meta["config"]["decoder"]).state_dict()
    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in weights.items()}, "checkerless": meta}, path)
    net, info = load_network(path)
    assert net.styles == 1 and info.styles == ["ihc"] and info.style_pngs == [meta["style_png"]]
    assert (info.config.downsample, info.config.loss_pooling, info.config.stability_weight) == ("stride-conv", "max", 0.0)
    assert net.decoder_label == "resize-nearest,deconv" and info.step == meta["step"]
    assert all(torch.equal(net.state_dict()[k], v) for k, v in weights.items())


def test_several_styles_share_all_but_their_norms_and_select_checks_its_argument():
    torch.manual_seed(5)
    one = TransformerNet(residual_blocks=1).state_dict()
    torch.manual_seed(5)
    net = TransformerNet(styles=3, residual_blocks=1)
    state = net.state_dict()
    assert state.keys() == one.keys()
    norms = {k for k, v in state.items() if v.shape != one[k].shape}
    assert norms and all(state[k].shape[0] == 3 for k in norms)  # (styles, C) scale and shift
    assert all(torch.equal(state[k], one[k]) for k in state if k not in norms)
    assert net.selected == (1.0, 0.0, 0.0) and net.selected_style == 0
    assert net.select_style([2, 0, 2]).selected == (0.5, 0.0, 0.5) and net.selected_style is None
    for bad, message in [(3, "style 3 does not exist: this network has 3 style"), (-1, "does not exist"),
                         ([1, 1], "a mix needs 3 weight"), ([0, 0, 0], "cannot all be 0"),
                         ([1, -1, 1], ">= 0"), ([1, float("nan"), 1], ">= 0"), (True, "an index or a list"),
                         ("0.5,0.5", "an index or a list")]:
        with pytest.raises(ValueError, match=message):
            net.select_style(bad)
    single = TransformerNet(residual_blocks=1)
    single.select_style(0).select_style([0.3])
    with pytest.raises(ValueError, match="has 1 style"):
        single.select_style(1)
    with pytest.raises(ValueError, match=f"between 1 and {MAX_STYLES}"):
        TransformerNet(styles=MAX_STYLES + 1)
    with pytest.raises(ValueError, match=f"1 to {MAX_STYLES} styles, got 33"):
        load_styles(["ihc"] * 33)


# --- training ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_style_run(tmp_path_factory, vgg19):
    """20 steps of ihc and colorwheel in one network, at 32 px."""
    out = tmp_path_factory.mktemp("two")
    cfg = TrainConfig(size=32, batch=2, steps=20, lr=2e-2, log_every=1, seed=2)
    return train(cfg, out_dir=out, style=["ihc", "colorwheel"], progress=False, loss_network=vgg19, probe_every=1000)


def test_a_two_style_network_stylises_with_each_style_and_a_mix(two_style_run, vgg19):
    net, info = load_network(two_style_run.checkpoint)
    assert net.styles == 2 and info.styles == ["ihc", "colorwheel"] and len(info.style_pngs) == 2
    module = StyleTransferModule(info.config, styles=list(zip(info.styles, info.style_pngs)), loss_network=vgg19)
    module.compute_style_grams()
    photos = probe_batch(32)
    outs, far = [], []  # far[i][j]: the output with style i, its style distance to style j
    for style in (0, 1, [0.5, 0.5]):
        with torch.no_grad():
            outs.append(net.select_style(style)(photos))
        far.append([float(distances(vgg19, outs[-1], photos, g)["style_distance"].mean()) for g in module.style_grams])
    # Each style's output is nearer its own style than the other style's output is.
    assert far[0][0] < far[1][0] and far[1][1] < far[0][1], far
    # The 50/50 mix lies between them on both.
    assert far[0][0] < far[2][0] < far[1][0] and far[1][1] < far[2][1] < far[0][1], far
    assert (outs[0] - outs[1]).abs().mean() > 5  # 0..255: visibly different pictures
    # The probe measured both styles (the mean, under the one-style keys).
    assert [r.step for r in two_style_run.artifacts] == [0, 20]
    assert set(two_style_run.artifacts[-1].to_dict()) == {"step", "artifact_p2", "artifact_p4", "artifact_p8", "eq_t1", "eq_t2", "eq_t3",
                                                "eq_t4", "style_distance", "content_distance"}


def test_the_probe_reports_the_mean_over_styles_each_against_its_own_grams(two_style_run, vgg19):
    from models.callbacks import ArtifactProbe

    net, info = load_network(two_style_run.checkpoint)
    module = StyleTransferModule(info.config, styles=list(zip(info.styles, info.style_pngs)), loss_network=vgg19)
    module.net.load_state_dict(net.state_dict())
    module.net.select_style([1, 3])
    photos = probe_batch(32)
    probe = ArtifactProbe(photos, every=1000)
    probe.measure(SimpleNamespace(global_step=7, is_global_zero=True, logger=None), module)
    assert module.net.selected == (0.25, 0.75)  # the training selection is put back
    module.compute_style_grams()
    each = []
    for i, grams in enumerate(module.style_grams):
        with torch.no_grad():
            each.append(float(distances(vgg19, module.net.select_style(i)(photos), photos, grams)["style_distance"].mean()))
    assert probe.rows[0].style_distance == pytest.approx(sum(each) / 2, rel=1e-5)
    assert each[0] != pytest.approx(each[1], rel=1e-2)


def test_a_two_style_run_resumes_exactly(tmp_path, vgg19):
    cfg = TrainConfig(size=32, batch=1, steps=5, lr=1e-2, log_every=1, seed=9, downsample="resize-down")
    styles = ["brick", "hubble"]
    whole = train(cfg, out_dir=tmp_path / "whole", style=styles, progress=False, loss_network=vgg19, probe_every=1000)
    part = train(cfg.replace(steps=3), out_dir=tmp_path / "part", style=styles, progress=False, loss_network=vgg19,
                 probe_every=1000)
    rest = train(out_dir=tmp_path / "part", resume=part.checkpoint, steps=5, progress=False, loss_network=vgg19,
                 probe_every=1000)
    assert [r["loss"] for r in rest.losses] == pytest.approx([r["loss"] for r in whole.losses[3:]], rel=1e-5)
    a, info = load_network(whole.checkpoint)
    b, _ = load_network(rest.checkpoint)
    assert info.styles == styles and info.config.downsample == "resize-down" and a.downsample == ("resize-down",) * 2
    for k, v in a.state_dict().items():
        assert torch.allclose(v, b.state_dict()[k], atol=1e-5), k


def test_a_checkpoint_whose_styles_do_not_fit_is_a_clear_error(tmp_path):
    png = style_png_from_image(load_styles("ihc")[0][1].resize((16, 16)))
    meta = dict(OLD["checkerless"], style_png=png, format=2, styles=["a", "b"], style_pngs=[png])
    path = tmp_path / "bad.ckpt"
    torch.save({"state_dict": {}, "checkerless": meta}, path)
    with pytest.raises(CheckpointError, match="styles do not fit"):
        read_checkpoint(path)
    meta = dict(meta, styles=["a", "b"], style_pngs=[png, png])
    torch.save({"state_dict": {f"net.{k}": v for k, v in TransformerNet().state_dict().items()}, "checkerless": meta}, path)
    with pytest.raises(CheckpointError, match="of 2 style"):
        load_network(path)
