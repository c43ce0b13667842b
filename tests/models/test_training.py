"""Training runs on the real loss network at tiny sizes: a few seconds each on a CPU."""

import hashlib

import pytest
import pytorch_lightning as pl
import torch

from models.checkpoint import CheckpointError, load_network, read_checkpoint
from models.config import TrainConfig
from models.lightning_module import StyleTransferModule, style_png_from_image
from models.data import ContentSet, CropStream
from models.builtin_images import load_style
from models.loss_network import build_loss_network
from models.training import train

TINY = dict(size=32, batch=2, log_every=1)


class BatchFingerprints(pl.Callback):
    def __init__(self):
        self.hashes = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.hashes.append(hashlib.sha256(batch.numpy().tobytes()).hexdigest())


def run(tmp_path, name, *, vgg19, callbacks=(), **config):
    cfg = TrainConfig(**{**TINY, **config})
    return train(cfg, out_dir=tmp_path / name, style="ihc", progress=False, loss_network=vgg19,
                 callbacks=callbacks)


def test_a_few_steps_lower_the_loss(tmp_path, vgg19):
    cfg = TrainConfig(**TINY, steps=30, lr=1e-2, seed=1)
    result = train(cfg, out_dir=tmp_path / "a", style="ihc", progress=False, loss_network=vgg19)
    assert len(result.losses) == 30
    # Where the steps' time went (models/callbacks.py PhaseTimer): steps 3 to 30, the probe of
    # step 25 among them, and the parts add up to the loop.
    t = result.timing
    assert t["steps"] == 28 and t["probe_s"] > 0 and t["step_s"] > 0, t
    assert t["step_s"] + t["probe_s"] + t["checkpoint_s"] + t["other_s"] == pytest.approx(t["loop_s"]), t
    # The same loss on the same held-out batch, before and after training.
    module = StyleTransferModule(cfg, style_name="ihc", style_png=read_checkpoint(result.checkpoint)[0].style_png,
                                 loss_network=vgg19)
    module.on_fit_start()
    batch = next(iter(CropStream(ContentSet.builtin(), size=32, batch=4, seed=99)))
    with torch.no_grad():
        before = module.losses(batch)
        module.net.load_state_dict(load_network(result.checkpoint)[0].state_dict())
        after = module.losses(batch)
    assert after["loss"] < 0.75 * before["loss"], (before, after)
    assert after["style"] < 0.6 * before["style"]


def test_same_seed_different_decoder_same_shared_weights_and_data(tmp_path, vgg19):
    cfg = TrainConfig(**TINY, steps=3, seed=11)
    style_png = style_png_from_image(load_style("ihc")[1])
    a = StyleTransferModule(cfg.replace(decoder="deconv"), style_name="ihc", style_png=style_png, loss_network=vgg19)
    b = StyleTransferModule(cfg.replace(decoder="resize-nearest"), style_name="ihc", style_png=style_png, loss_network=vgg19)
    sa, sb = a.net.shared_state_dict(), b.net.shared_state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    fa, fb = BatchFingerprints(), BatchFingerprints()
    run(tmp_path, "deconv", vgg19=vgg19, steps=3, seed=11, decoder="deconv", callbacks=[fa])
    run(tmp_path, "nearest", vgg19=vgg19, steps=3, seed=11, decoder="resize-nearest", callbacks=[fb])
    assert fa.hashes == fb.hashes and len(fa.hashes) == 3


def test_checkpoint_round_trip(tmp_path, vgg19):
    result = run(tmp_path, "a", vgg19=vgg19, steps=2, decoder="resize-nearest,deconv", seed=5)
    info, raw = read_checkpoint(result.checkpoint)
    assert info.step == 2 and info.config.decoder == "resize-nearest,deconv" and info.config.seed == 5
    assert info.style_name == "ihc" and info.style_png.startswith(b"\x89PNG")
    assert info.versions["torch"] == str(torch.__version__)
    assert not any(k.startswith("loss_net") for k in raw["state_dict"])  # rebuilt, not stored
    net, _ = load_network(result.checkpoint)
    weights = {k.removeprefix("net."): v for k, v in raw["state_dict"].items()}
    assert all(torch.equal(net.state_dict()[k], weights[k]) for k in net.state_dict())


def test_resume_continues_exactly(tmp_path, vgg19):
    whole = run(tmp_path, "whole", vgg19=vgg19, steps=6, checkpoint_every=100)
    class Counter(pl.Callback):  # counts started steps, so the stop flag rises at the end of step 3
        calls = 0

        def on_train_batch_start(self, *args):
            Counter.calls += 1

    stops_at_3 = lambda: Counter.calls >= 3  # noqa: E731
    first = train(TrainConfig(**TINY, steps=6), out_dir=tmp_path / "part", style="ihc", progress=False,
                  loss_network=vgg19, callbacks=[Counter()], should_stop=stops_at_3)
    assert first.stopped and first.step == 3
    rest = train(out_dir=tmp_path / "part", resume=first.checkpoint, progress=False, loss_network=vgg19)
    assert rest.step == 6 and not rest.stopped
    expected = [r["loss"] for r in whole.losses[3:]]
    got = [r["loss"] for r in rest.losses]
    assert got == pytest.approx(expected, rel=1e-5)
    final_whole, _ = load_network(whole.checkpoint)
    final_resumed, _ = load_network(rest.checkpoint)
    for k, v in final_whole.state_dict().items():
        assert torch.allclose(v, final_resumed.state_dict()[k], atol=1e-5), k


def test_resume_from_a_periodic_checkpoint_with_more_steps(tmp_path, vgg19):
    first = run(tmp_path, "a", vgg19=vgg19, steps=4, checkpoint_every=2)
    assert read_checkpoint(first.checkpoint)[0].step == 4
    # Steps 3 and 4 counted, with the checkpoint written after step 2 (the one after the last
    # step is the run's end, not a step's cost).
    assert first.timing["steps"] == 2 and first.timing["checkpoint_s"] > 0, first.timing
    more = train(out_dir=tmp_path / "b", resume=first.checkpoint, steps=7, progress=False, loss_network=vgg19)
    assert more.step == 7 and len(more.losses) == 3
    assert more.timing["steps"] == 1, more.timing  # a resumed run counts from where it began: step 7
    with pytest.raises(ValueError, match="already at step 7"):
        train(out_dir=tmp_path / "c", resume=more.checkpoint, progress=False, loss_network=vgg19)


def test_random_loss_weights_are_refused_unless_asked_for_by_name(tmp_path):
    style_png = style_png_from_image(load_style("ihc")[1])
    random_net = build_loss_network("vgg19-random")
    with pytest.raises(ValueError, match="random weights"):
        StyleTransferModule(TrainConfig(**TINY), style_name="ihc", style_png=style_png, loss_network=random_net)
    module = StyleTransferModule(TrainConfig(**TINY, loss_network="vgg19-random"), style_name="ihc",
                                 style_png=style_png, loss_network=random_net)
    assert not module.loss_net.pretrained


def test_bad_settings_say_what_to_fix():
    with pytest.raises(ValueError, match="size must be between 16"):
        TrainConfig(size=0)
    with pytest.raises(ValueError, match="steps must be between 1"):
        TrainConfig(steps=-1)
    with pytest.raises(ValueError, match="unknown decoder 'nope'"):
        TrainConfig(decoder="nope")
    with pytest.raises(ValueError, match="unknown setting"):
        TrainConfig.from_dict({"size": 32, "colour": "blue"})


def test_not_a_checkpoint(tmp_path):
    p = tmp_path / "x.ckpt"
    p.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        read_checkpoint(p)
    torch.save({"state_dict": {}}, p)
    with pytest.raises(CheckpointError, match="not a checkerless checkpoint"):
        read_checkpoint(p)


def test_content_target_stops_at_its_layer_with_the_same_values(vgg19):
    x = torch.rand(2, 3, 32, 32) * 255
    with torch.no_grad():
        full = vgg19(x)[vgg19.content_layer]
    assert torch.equal(vgg19.content_target(x), full)
    assert not vgg19.content_target(x).requires_grad


def test_speed_plan_compiles_only_where_it_pays():
    from models.training import Speed

    assert not Speed.plan("cpu", steps_left=40_000).compiled  # not even a long run: slower on the CPU
    assert Speed.plan("cpu", steps_left=10, compile="on").compiled
    gpu = Speed.plan("gpu", steps_left=10)
    assert gpu.compiled and gpu.precision == "bf16-mixed" and gpu.pin_memory and gpu.benchmark
    with pytest.raises(ValueError, match="auto, on or off"):
        Speed.plan("cpu", steps_left=10, compile="yes")


def test_a_ready_made_content_set_names_the_checkpoint_and_a_resume_needs_its_images(tmp_path, vgg19, photo_dir):
    """What the worker passes for a set streamed from the store: the checkpoint keeps its label,
    and resuming elsewhere without the images is a clear error, not a search for a folder."""
    from dataclasses import replace

    label = "content-set:" + "a" * 32
    content = replace(ContentSet.from_folder(photo_dir), label=label)
    first = train(TrainConfig(**TINY, steps=2), out_dir=tmp_path / "a", style="ihc", content=content, progress=False,
                  loss_network=vgg19)
    assert read_checkpoint(first.checkpoint)[0].content == label
    with pytest.raises(ValueError, match=f"was trained on {label}, which is not a folder here"):
        train(out_dir=tmp_path / "b", resume=first.checkpoint, steps=3, progress=False, loss_network=vgg19)
    more = train(out_dir=tmp_path / "c", resume=first.checkpoint, steps=3, content=content, progress=False,
                 loss_network=vgg19)
    assert more.step == 3 and read_checkpoint(more.checkpoint)[0].content == label
