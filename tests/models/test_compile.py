"""torch.compile on the training step: the same losses as eager, and `checkerless bench
--end-to-end` timing whole training processes. A file of its own: a first compile costs a
minute or more on a 2-core CPU, and with the suite's one file per pytest-xdist worker it is
then scheduled apart from the other training tests."""

import json
import subprocess
import sys

import pytest
import torch

from models.checkpoint import load_network, read_checkpoint
from models.config import TrainConfig
from models.lightning_module import StyleTransferModule
from models.training import train
from tests.models.test_training import TINY


@pytest.mark.slow
def test_compiled_training_gives_the_same_losses_as_eager(tmp_path, vgg19):
    """The tuned path changes speed only: same data, same weights, same losses (float rounding).
    Over a minute on a 2-core CPU: torch.compile's first compile of the step. The default
    network (its filtered ReLUs, up- and downsampling) without the stability term: that term
    calls the same network twice more, which triples the graph to compile (3 minutes here)
    and adds no kind of operation."""
    cfg = TrainConfig(**TINY, steps=4, seed=3, lr=1e-3, precision="32",  # small fp32 steps: rounding stays rounding
                      stability_weight=0.0)
    plain = train(cfg, out_dir=tmp_path / "eager", style="ihc", progress=False, loss_network=vgg19, compile="off")
    tuned = train(cfg, out_dir=tmp_path / "compiled", style="ihc", progress=False, loss_network=vgg19, compile="on")
    assert [r["step"] for r in tuned.losses] == [r["step"] for r in plain.losses]
    for a, b in zip(plain.losses, tuned.losses):
        for k in ("loss", "content", "style"):
            assert b[k] == pytest.approx(a[k], rel=1e-3), (k, a, b)
        # The TV term is ~1e-5 of the loss: Adam's normalised steps carry the fused kernels'
        # rounding into it a little more, still far below any real change (2.1% at step 4 on an
        # AMD EPYC without AVX-512, whose kernels differ from the AVX-512 ones measured before).
        assert b["tv"] == pytest.approx(a["tv"], rel=5e-2), (a, b)
    # Adam moves near-zero-gradient weights by ~lr whatever the gradient's size, so compare
    # what the networks do: their stylisations of a photo. Adam's first steps are nearly
    # lr * sign(gradient), so rounding flips whole steps of weights whose gradient is ~0; how
    # much depends on the CPU's vector width (inductor's kernels differ; 8% on this one).
    # Measured against what the four steps changed, a real difference would be
    # of the size of training itself.
    photo = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(0)) * 255
    untrained = StyleTransferModule(cfg, style_name="ihc", style_png=read_checkpoint(plain.checkpoint)[0].style_png,
                                    loss_network=vgg19).net
    with torch.no_grad():
        a, b, before = (net(photo) for net in (*(load_network(r.checkpoint)[0] for r in (plain, tuned)), untrained))
    trained, rounding = (a - before).abs().mean().item(), (a - b).abs().mean().item()
    assert rounding < 0.15 * trained, (rounding, trained)


@pytest.mark.slow
def test_bench_end_to_end_times_whole_training_processes():
    """`checkerless bench --end-to-end` as whole processes: the reference recipe and `checkerless
    train`, each at two lengths. Without its compiled variant (`--no-compile`): a first compile
    of the default network's step costs minutes on a 2-core CPU, and the test above is the one
    that compiles."""
    p = subprocess.run([sys.executable, "-m", "service.cli", "bench", "--end-to-end", "--no-compile", "--size",
                        str(TINY["size"]), "--batch", str(TINY["batch"]), "--precision", "32", "--steps", "1",
                        "--repeats", "1", "--json"], capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout)
    rows = {r["variant"]: r for r in result["rows"]}
    assert set(rows) == {"reference", "train --compile off"} and result["precision"] == "32"
    assert rows["reference"]["speedup"] == 1.0
    assert all(r["short_s"] > 0 and r["long_s"] > 0 for r in rows.values())
