"""Where a GPU's time goes: torch.profiler over our training step (bf16, compiled, as a GPU job
runs it) and over a 1024 px stylise, printing the kernels that take the most device time.
`python scripts/gpu_profile.py [SIZE BATCH]`; scripts/gpu-bench.sh runs it on a lent GPU."""

from __future__ import annotations

import sys

import torch
from torch.profiler import ProfilerActivity, profile

from models.bench import module_step
from models.config import TrainConfig
from models.lightning_module import encode_png
from models.loss_network import build_loss_network
from models.transformer_net import TransformerNet


def main(size: int = 256, batch: int = 16) -> None:
    from PIL import Image

    dev = torch.device("cuda")
    g = torch.Generator().manual_seed(0)
    content = (torch.rand(batch, 3, size, size, generator=g) * 255).to(dev)
    style = (torch.rand(size, size, 3, generator=g) * 255).byte().numpy()
    # The step a GPU job runs (the stability term included), bf16 and compiled.
    step = module_step(TrainConfig(size=size, batch=batch), encode_png(Image.fromarray(style)), content,
                       build_loss_network("vgg19").to(dev), use_compile=True, bf16=True)

    net = torch.compile(TransformerNet().to(dev).eval(), mode="reduce-overhead", dynamic=False)
    image = (torch.rand(1, 3, 1024, 1024, generator=g) * 255).to(dev)

    def infer() -> None:
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            net(image)

    for name, fn, n in ((f"train step {size}px x{batch}, bf16, compiled", step, 5),
                        ("stylise 1024px, bf16, compiled, CUDA graph", infer, 20)):
        for _ in range(3):  # compile, autotune, warm caches
            fn()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(n):
                fn()
            torch.cuda.synchronize()
        print(f"\n## {name}: {n} calls")
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=15, max_name_column_width=60))


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
