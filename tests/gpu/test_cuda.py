"""The GPU paths: training in bf16, the network on the GPU against the CPU, tiles on the GPU.
Skipped where there is no CUDA device (CI); scripts/gpu-bench.sh runs them on a lent GPU. The
compiled GPU step is run by the same script's benchmark (`ours, compiled, bf16`)."""

import pytest
import torch

from models.bench import psnr
from models.checkpoint import load_network
from models.config import TrainConfig
from models.builtin_images import BUILTIN_PHOTOS
from models.images import to_tensor
from models.stylize import stylize_tensor
from models.training import Speed, train

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def photo(width: int, height: int) -> torch.Tensor:
    return to_tensor(BUILTIN_PHOTOS["coffee"]().resize((width, height)))


def test_a_gpu_run_plans_bf16_and_trains_to_a_network_that_matches_on_the_cpu(tmp_path, vgg19, style_png):
    speed = Speed.plan("gpu", steps_left=6)
    assert (speed.precision, speed.compiled, speed.benchmark, speed.pin_memory) == ("bf16-mixed", True, True, True)
    result = train(TrainConfig(size=64, batch=4, steps=6, checkpoint_every=6, lr=1e-2), out_dir=tmp_path,
                   style=style_png, device="gpu", compile="off", progress=False, loss_network=vgg19)
    losses = [r["loss"] for r in result.losses]
    assert result.step == 6 and all(torch.isfinite(torch.tensor(losses))), losses
    net, _ = load_network(result.checkpoint)
    image = photo(150, 98)  # odd sizes: the network pads to its 4-pixel grid
    on_cpu = stylize_tensor(net.cpu(), image)
    on_gpu = stylize_tensor(net.cuda(), image)
    assert on_gpu.device.type == "cpu" and on_gpu.shape == image.shape
    # fp32 on both, but cuDNN may run fp32 convolutions on TF32 tensor cores (PyTorch's default)
    assert psnr(on_gpu, on_cpu) > 40, psnr(on_gpu, on_cpu)


def test_tiles_on_the_gpu_equal_the_whole_pass():
    from models.transformer_net import TransformerNet

    torch.manual_seed(0)
    net = TransformerNet().cuda().eval()
    image = photo(700, 520)
    whole = stylize_tensor(net, image)
    tiled = stylize_tensor(net, image, tile=256)
    assert psnr(tiled, whole) > 60

