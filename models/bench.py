"""Speed and memory of the decoders, measured in one run against a baseline decoder:
inference time per image and training-step time (network + VGG loss + backward + Adam).
Numbers are reported as ratios to the baseline measured in the same run, never asserted."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from models.loss_network import LossNetwork, build_loss_network
from models.losses import gram_matrix, perceptual_loss
from models.transformer_net import TransformerNet


@dataclass(frozen=True)
class BenchRow:
    decoder: str
    params: int
    infer_ms: float  # median per batch, forward only
    step_ms: float  # median training step
    infer_ratio: float  # against the baseline (the first decoder)
    step_ratio: float
    peak_mib: float | None  # CUDA peak memory of a training step; None on the CPU

    def as_dict(self) -> dict:
        return asdict(self)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_ms(fn, *, steps: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def bench(decoders: Sequence[str], *, size: int = 128, batch: int = 4, steps: int = 5, warmup: int = 2,
          device: str = "cpu", loss_network: LossNetwork | None = None, seed: int = 0) -> list[BenchRow]:
    dev = torch.device("cuda" if device in ("gpu", "cuda") else device)
    loss_net = (loss_network or build_loss_network("vgg19")).to(dev)
    g = torch.Generator().manual_seed(seed)
    content = (torch.rand(batch, 3, size, size, generator=g) * 255).to(dev)
    style = (torch.rand(1, 3, size, size, generator=g) * 255).to(dev)
    with torch.no_grad():
        grams = {k: gram_matrix(v) for k, v in loss_net(style).items() if k in loss_net.style_layers}
        target = loss_net(content)[loss_net.content_layer]
    raw = []
    for decoder in decoders:
        torch.manual_seed(seed)
        net = TransformerNet(decoder=decoder).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)

        def infer() -> None:
            with torch.inference_mode():
                net(content)

        def train_step() -> None:
            loss = perceptual_loss(loss_net, net(content), content_target=target, style_grams=grams)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        infer_ms = _median_ms(infer, steps=steps, warmup=warmup, device=dev)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        step_ms = _median_ms(train_step, steps=steps, warmup=warmup, device=dev)
        peak = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None
        raw.append((net.decoder_label, sum(p.numel() for p in net.parameters()), infer_ms, step_ms, peak))
    base_infer, base_step = raw[0][2], raw[0][3]
    return [BenchRow(d, n, i, s, i / base_infer, s / base_step, m) for d, n, i, s, m in raw]
