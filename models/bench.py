"""Speed and memory of the decoders, measured in one run against a baseline decoder:
inference time per image and training-step time (network + VGG loss + backward + Adam).
Numbers are reported as ratios to the baseline measured in the same run, never asserted.

`precision` everywhere here is a resolved one (models/hardware.py resolve_precision): "32", or
"bf16" for bf16 autocast around the forward passes (and the loss; the backward and Adam run
outside it, as Lightning's "bf16-mixed" does)."""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from models.hardware import autocast
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
          device: str = "cpu", loss_network: LossNetwork | None = None, seed: int = 0,
          precision: str = "32") -> list[BenchRow]:
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
            with torch.inference_mode(), autocast(precision, dev):
                net(content)

        def train_step() -> None:
            with autocast(precision, dev):
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


# --- against the pytorch/examples recipe (models/reference.py) -------------------------------


@dataclass(frozen=True)
class ReferenceRow:
    task: str  # "train 128px x4" or "infer 512px"
    variant: str
    ms: float  # median over alternated repetitions
    speedup: float  # the reference's median / this median (>1: faster than the reference)
    gflop: float  # per image: forward+backward for a training step, forward for inference
    gflops: float  # achieved GFLOP/s
    peak_mib: float | None  # CUDA: peak allocated; CPU: peak RSS above the bench's start
    startup_s: float  # the first two calls (compilation, if any), not in the median

    def as_dict(self) -> dict:
        return asdict(self)


class _PeakRSS:
    """Samples this process's resident memory every 2 ms in a thread (Linux /proc)."""

    def __init__(self) -> None:
        import threading

        self.peak = self.rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss() -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * 4096
        except OSError:
            return 0

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self.rss())

    def __enter__(self) -> _PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def count_flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


# Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's data sheets, SXM parts, in GFLOP/s.
GPU_BF16_PEAK_GFLOPS = {"H200": 989_000, "H100": 989_000, "A100": 312_000}


def gpu_bf16_peak_gflops(name: str) -> float | None:
    """The data-sheet bf16 peak of a GPU named like torch.cuda.get_device_name(), if known."""
    return next((peak for key, peak in GPU_BF16_PEAK_GFLOPS.items() if key in name), None)


@dataclass(frozen=True)
class _Cores:
    """What the nominal peaks need from /proc/cpuinfo and the scheduler."""
    cores: int
    ghz: float  # the clock /proc/cpuinfo reports; boost clocks run above it
    flags: frozenset[str]
    amd_256: bool  # AMD before family 26 runs 512-bit instructions on 256-bit pipes


def _cores() -> _Cores | None:
    import os

    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return None
    field = lambda name: next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith(name)), "")  # noqa: E731
    return _Cores(cores=len(os.sched_getaffinity(0)), ghz=float(field("cpu MHz") or 0) / 1000,
                  flags=frozenset(field("flags").split()),
                  amd_256=field("vendor_id") == "AuthenticAMD" and int(field("cpu family") or 0) < 26)


def cpu_peak_gflops() -> tuple[float | None, str]:
    """Nominal fp32 peak of this machine's cores: cores x clock x FMA pipes x 2 x lanes, with
    the lanes from the vector flags."""
    c = _cores()
    if c is None:
        return None, "unknown (no /proc/cpuinfo)"
    bits = 512 if "avx512f" in c.flags and not c.amd_256 else 256 if "avx2" in c.flags else 128
    peak = c.cores * c.ghz * 2 * 2 * bits / 32
    return peak, f"{c.cores} cores x {c.ghz:.2f} GHz x 2 FMA pipes x 2 x {bits // 32} fp32 lanes"


# bf16 FLOPs per cycle per core of the CPU's bf16 matrix arithmetic: AMX's tile unit (Intel's
# figure: 1,024 bf16 FLOP per cycle per core), else AVX512_BF16's dot product (VDPBF16PS: 32
# bf16 pairs per 512-bit instruction, 64 FLOP, on two FMA pipes; on one 256-bit-wide pair of
# pipes on AMD before family 26, half that).
AMX_BF16_FLOP_PER_CYCLE = 1024
AVX512_BF16_FLOP_PER_CYCLE = 2 * 64


def cpu_bf16_peak_gflops() -> tuple[float | None, str]:
    """Nominal bf16 peak of this machine's cores where they have bf16 matrix arithmetic, or
    None (bf16 is emulated there: models/hardware.py keeps fp32)."""
    c = _cores()
    if c is None:
        return None, "unknown (no /proc/cpuinfo)"
    if "amx_bf16" in c.flags:
        per, unit = AMX_BF16_FLOP_PER_CYCLE, "AMX"
    elif "avx512_bf16" in c.flags:
        per, unit = AVX512_BF16_FLOP_PER_CYCLE // (2 if c.amd_256 else 1), "AVX512_BF16"
    else:
        return None, "no bf16 matrix arithmetic"
    return c.cores * c.ghz * per, f"{c.cores} cores x {c.ghz:.2f} GHz x {per} bf16 FLOP per cycle ({unit})"


REF = "reference"  # the pytorch/examples recipe, models/reference.py


def module_step(config, style_png: bytes, content: torch.Tensor, loss_net: LossNetwork, *, use_compile: bool = False,
                bf16: bool = False, channels_last: bool = False, seed: int = 0, cls=None):
    """One training step of the Lightning module a job trains (models/lightning_module.py: its
    losses, stability term included, and its optimizer), without Lightning around it, on
    `content` and on its device: the bare step that jobs and the reference are measured against.
    `channels_last`: the networks' weights and the photos in NHWC (on a copy of `loss_net`, so
    the other variants keep theirs)."""
    from models.lightning_module import StyleTransferModule

    torch.manual_seed(seed)
    if channels_last:
        loss_net = copy.deepcopy(loss_net)
        content = content.contiguous(memory_format=torch.channels_last)
    module = (cls or StyleTransferModule)(config, style_name="bench", style_png=style_png, loss_network=loss_net,
                                          compiled=use_compile).to(content.device)
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    module.on_fit_start()
    opt = module.configure_optimizers()

    def step() -> None:
        # bf16: what Lightning's "bf16-mixed" precision (a run's where precision resolves to
        # bf16, models/training.py Speed) wraps the step in; the Grams stay fp32 (models/losses.py).
        with torch.autocast(content.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = module.step_losses(content, 0)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def bench_reference(*, size: int = 128, batch: int = 4, infer_sizes: Sequence[int] = (256, 512, 1024),
                    repeats: int = 5, device: str = "cpu", compiled: bool = True,
                    loss_network: LossNetwork | None = None, seed: int = 0, precision: str = "32") -> list[ReferenceRow]:
    """Our training step and inference against the pytorch/examples recipe, alternated in one run.

    Training variants: the reference; ours eager as it was (the content target through the whole
    loss network); ours eager; ours compiled. Inference: the reference's network, ours eager,
    ours compiled (dynamic sizes: one compilation serves every size). With `precision` "bf16"
    also ours in bf16 autocast (compiled too on a GPU, and a CUDA graph there for inference)."""
    from models.config import TrainConfig
    from models.lightning_module import StyleTransferModule, encode_png
    from models.reference import ReferenceNet, ReferenceStep

    dev = torch.device("cuda" if device in ("gpu", "cuda") else device)
    g = torch.Generator().manual_seed(seed)
    content = (torch.rand(batch, 3, size, size, generator=g) * 255).to(dev)
    style = torch.rand(1, 3, size, size, generator=g) * 255
    loss_net = loss_network or build_loss_network("vgg19")

    from PIL import Image

    style_png = encode_png(Image.fromarray(style[0].permute(1, 2, 0).byte().numpy()))

    class FullContentPass(StyleTransferModule):  # the step before the content target was cut short
        def content_target(self, content: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return self.loss_net(content)[self.loss_net.content_layer]

    def our_step(cls, use_compile: bool, bf16: bool = False, channels_last: bool = False):
        return module_step(TrainConfig(size=size, batch=batch), style_png, content, loss_net, use_compile=use_compile,
                           bf16=bf16, channels_last=channels_last, seed=seed, cls=cls)

    torch.manual_seed(seed)
    ref = ReferenceStep(style, device=dev)
    train_variants = {REF: lambda: ref.step(content),
                      "ours, full-VGG content": our_step(FullContentPass, False),
                      "ours": our_step(StyleTransferModule, False)}
    if compiled:
        train_variants["ours, compiled"] = our_step(StyleTransferModule, True)
    bf16 = precision == "bf16"
    if bf16:  # the path a job takes where auto means bf16: bf16 autocast, compiled where asked
        train_variants["ours, bf16"] = our_step(StyleTransferModule, False, bf16=True)
        # oneDNN's bf16 convolutions (AMX) and cuDNN's tensor cores prefer NHWC: measured, not assumed.
        train_variants["ours, bf16, channels_last"] = our_step(StyleTransferModule, False, bf16=True,
                                                               channels_last=True)
        if compiled:
            train_variants["ours, compiled, bf16"] = our_step(StyleTransferModule, True, bf16=True)
    flops = {REF: count_flops(lambda: ref.step(content)),
             "ours": count_flops(our_step(StyleTransferModule, False)),
             "ours, full-VGG content": count_flops(our_step(FullContentPass, False))}
    rows = _alternate(f"train {size}px x{batch}", train_variants, flops, per=batch, repeats=repeats, device=dev)

    torch.manual_seed(seed)
    ref_net, our_net = ReferenceNet().to(dev).eval(), TransformerNet().to(dev).eval()
    infer_compiled = torch.compile(our_net, dynamic=True) if compiled else None
    # One static graph per size, replayed as a CUDA graph: a 1024 px forward is a few ms of
    # kernels, and launching them one by one from Python is a fair part of that. dynamic=False:
    # left to itself, the second size's recompile turns dynamic, and its kernels were 4.7x
    # slower at 1024 px on an H200 (docs/performance.md).
    infer_graphed = (torch.compile(our_net, mode="reduce-overhead", dynamic=False)
                     if compiled and dev.type == "cuda" else None)
    onnx_run = _onnx_runner(our_net) if dev.type == "cpu" else None  # the stylise server's path on a CPU
    nhwc_net = copy.deepcopy(our_net).to(memory_format=torch.channels_last) if precision == "bf16" else None
    for s in infer_sizes:
        image = (torch.rand(1, 3, s, s, generator=g) * 255).to(dev)

        def infer(net, bf16: bool = False, channels_last: bool = False):
            x = image.contiguous(memory_format=torch.channels_last) if channels_last else image

            def run() -> None:
                with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                    net(x)
            return run
        variants = {REF: infer(ref_net), "ours": infer(our_net)}
        if infer_compiled is not None:
            variants["ours, compiled"] = infer(infer_compiled)
        if bf16:
            variants["ours, bf16"] = infer(our_net, bf16=True)
            variants["ours, bf16, channels_last"] = infer(nhwc_net, bf16=True, channels_last=True)
            if infer_graphed is not None:
                variants["ours, compiled, bf16, CUDA graph"] = infer(infer_graphed, bf16=True)
        if onnx_run is not None:
            variants["ours, onnxruntime"] = (lambda image: lambda: onnx_run(image))(image)
        counted = {REF: count_flops(infer(ref_net)), "ours": count_flops(infer(our_net))}
        rows += _alternate(f"infer {s}px", variants, counted, per=1, repeats=repeats, device=dev)
    return rows


def _onnx_runner(net: TransformerNet):
    """The network exported to ONNX and run by onnxruntime (models/export.py)."""
    import tempfile

    from models.export import export_onnx, load_exported

    with tempfile.TemporaryDirectory() as tmp:
        return load_exported(export_onnx(net, f"{tmp}/net.onnx"))  # the session holds the model


def _alternate(task: str, variants: dict, flops: dict, *, per: int, repeats: int, device: torch.device) -> list[ReferenceRow]:
    start_rss = _PeakRSS.rss()
    startup, peaks = {}, {}
    for name, fn in variants.items():  # the first two calls: compilation, allocator warm-up
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        t = time.perf_counter()
        with _PeakRSS() as rss:
            fn()
            fn()
            _sync(device)
        startup[name] = time.perf_counter() - t
        peaks[name] = (torch.cuda.max_memory_allocated(device) if device.type == "cuda" else rss.peak - start_rss) / 2**20
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            _sync(device)
            t = time.perf_counter()
            fn()
            _sync(device)
            times[name].append((time.perf_counter() - t) * 1000)
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    base = next(iter(medians.values()))
    rows = []
    for name, ms in medians.items():
        f = flops.get(name, flops.get("ours", 0)) / per
        rows.append(ReferenceRow(task, name, ms, base / ms, f / 1e9, f * per / (ms / 1000) / 1e9,
                                 max(peaks[name], 0.0), startup[name]))
    return rows


# --- tiled stylising (models/tiling.py) --------------------------------------------------------


@dataclass(frozen=True)
class TilingRow:
    size: str  # "WxH"
    mode: str  # "whole" or "tiles of N px"
    seconds: float
    peak_mib: float  # CUDA: peak allocated; CPU: peak RSS above the start of this run
    psnr_db: float | None  # tiled against whole, where both ran (seams included)

    def as_dict(self) -> dict:
        return asdict(self)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two 0..255 images after rounding to 8 bits."""
    import math

    a, b = a.clamp(0, 255).round(), b.clamp(0, 255).round()
    mse = ((a - b) ** 2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def bench_tiling(net: TransformerNet, sizes: Sequence[tuple[int, int]] = ((1024, 1024), (4096, 3072)), *,
                 tile: int = 512, whole_up_to: int = 2048 * 2048, device: str = "cpu", seed: int = 0,
                 precision: str = "32") -> list[TilingRow]:
    """Time and peak memory of stylising one image with `net` whole and in tiles; whole only
    up to `whole_up_to` pixels (a 4096x3072 image whole needs many GiB)."""
    from models.tiling import stylize_tiled

    dev = torch.device("cuda" if device in ("gpu", "cuda") else device)
    net = net.to(dev).eval()
    rows = []
    for w, h in sizes:
        image = (torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 255).to(dev)
        results = {}
        runs = [("tiles", lambda: stylize_tiled(net, image, tile, precision=precision))]
        if w * h <= whole_up_to:
            runs.append(("whole", lambda: _whole(net, image, precision)))
        for mode, fn in runs:
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            start = _PeakRSS.rss()
            t = time.perf_counter()
            with _PeakRSS() as rss:
                results[mode] = fn()
                _sync(dev)
            seconds = time.perf_counter() - t
            peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else rss.peak - start
            rows.append(TilingRow(f"{w}x{h}", mode if mode == "whole" else f"tiles of {tile} px", seconds,
                                  peak / 2**20, None))
        if "whole" in results:
            rows[-2] = TilingRow(**{**rows[-2].as_dict(), "psnr_db": psnr(results["tiles"], results["whole"])})
        del results
    return rows


def _whole(net: TransformerNet, image: torch.Tensor, precision: str = "32") -> torch.Tensor:
    from models.stylize import forward

    return forward(net, image, precision)


# --- stylising photos at a precision against fp32 (`checkerless bench --stylize`) ----------------

STYLIZE_PHOTOS = ("chelsea", "astronaut", "coffee")  # scikit-image's, as the preview panel (models/preview.py)


@dataclass(frozen=True)
class StylizeRow:
    photo: str
    size: str  # "WxH"
    precision: str  # resolved: "32" (the baseline) or "bf16"
    ms: float  # median of stylize_tensor, the call `checkerless stylize` makes per image
    ratio: float  # ms / the fp32 baseline's ms on the same photo, in the same run (< 1: faster)
    speedup: float  # the baseline's ms / ms
    psnr_db: float | None  # against the fp32 output, after rounding both to 8 bits; None for the baseline

    def as_dict(self) -> dict:
        return asdict(self)


def photo_tensor(name: str, width: int, height: int) -> torch.Tensor:
    """A built-in photo cropped to the aspect of width x height and resized to it: (3, H, W) 0..255."""
    from PIL import Image, ImageOps

    from models.builtin_images import BUILTIN_PHOTOS
    from models.images import to_tensor

    photo = BUILTIN_PHOTOS[name]().convert("RGB")
    return to_tensor(ImageOps.fit(photo, (width, height), Image.Resampling.LANCZOS))


def bench_stylize(net: TransformerNet, *, width: int = 1024, height: int = 768, photos: Sequence[str] = STYLIZE_PHOTOS,
                  precision: str = "bf16", repeats: int = 3, device: str = "cpu") -> list[StylizeRow]:
    """Stylise each photo at `precision` and at fp32 (the baseline), whole (no tiles), with
    models.stylize.stylize_tensor; one untimed call each first, then `repeats` timed calls,
    the two precisions alternated so both see the same load on the machine."""
    from models.stylize import stylize_tensor

    dev = torch.device("cuda" if device in ("gpu", "cuda") else device)
    net = net.to(dev).eval()
    variants = ["32"] if precision == "32" else ["32", precision]
    budget = 1 << 62  # whole images: tiling has its own bench (--tiling)
    rows = []
    for name in photos:
        image = photo_tensor(name, width, height)
        run = lambda p: stylize_tensor(net, image, precision=p, memory_budget=budget)  # noqa: E731
        outputs = {p: run(p) for p in variants}  # untimed: allocation, kernel choice
        times: dict[str, list[float]] = {p: [] for p in variants}
        for _ in range(repeats):
            for p in variants:
                _sync(dev)
                t = time.perf_counter()
                run(p)  # returns on the CPU: the GPU's work is done
                times[p].append((time.perf_counter() - t) * 1000)
        base = statistics.median(times["32"])
        for p in variants:
            ms = statistics.median(times[p])
            rows.append(StylizeRow(name, f"{width}x{height}", p, ms, ms / base, base / ms,
                                   None if p == "32" else psnr(outputs[p], outputs["32"])))
    return rows
