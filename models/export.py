"""A trained transfer network as a file for other runtimes: ONNX (onnxruntime and the rest)
or TorchScript (torch.jit.load, libtorch), for any batch, height and width, and the check
that the file computes what the eager network computes.

ONNX comes from torch.onnx's torch.export-based exporter (`dynamo=True`, torch's default and
recommended one): it keeps the size arithmetic of TransformerNet.forward symbolic (the pad to
a multiple of 4, with its minimum of 8, becomes Shape/Max/Pad/Slice nodes). The older
TorchScript-based exporter (`dynamo=False`) traces Python ints: it freezes `max()` at the
example's branch, so images under 5 pixels fail in onnxruntime.

TorchScript comes from torch.jit.script, not trace: forward's Python arithmetic on the size is
compiled as it is, for every decoder. (torch 2.14 marks torch.jit deprecated in favour of
torch.export; scripting still works and is what libtorch loads.)

Both files say what they hold: the decoder, the input convention and the checkerless version,
in the ONNX model's metadata_props or in the TorchScript archive's extra file
`checkerless.json` (see `read_metadata`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import time
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from models.checkpoint import _version
from models.transformer_net import TransformerNet
from models.vocabulary import EXPORT_SUFFIXES

FORMATS = ("onnx", "torchscript")
SUFFIXES = EXPORT_SUFFIXES
OPSET = 20  # torch 2.14's own opset for the exporter (no version conversion); onnxruntime >= 1.17
INPUT_NAME, OUTPUT_NAME = "image", "stylized"
INPUT_CONVENTION = "RGB float32 0..255, NCHW (batch, 3, height, width); any batch, height and width"
OUTPUT_CONVENTION = "RGB float32 0..255, NCHW, the input's size; not clamped: clamp to 0..255 and round for 8 bits"
TORCHSCRIPT_METADATA = "checkerless.json"  # the extra file in a TorchScript archive
# The example the exporter runs: not a multiple of 4, so the padding it records is not empty.
# Nothing in forward branches on the size; other sizes are checked, not assumed.
EXAMPLE_SIZE = (29, 43)
# The built-in check: a photo at full size (300x451) and smaller at odd sizes (99x149).
CHECK_PHOTO, CHECK_SHORTER_SIDE = "chelsea", 99


class ExportError(ValueError):
    """The network could not be exported, or the file is not an export we can run."""


def metadata(net: TransformerNet, extra: Mapping[str, object] | None = None) -> dict[str, str]:
    """What an exported file says about itself (all strings: ONNX metadata_props are)."""
    meta = {
        "checkerless.decoder": net.decoder_label,
        "checkerless.downsample": net.downsample_label,
        # A network of several styles is exported with the style (or mix) selected in it baked
        # in: the file computes that one; export again after select_style for another.
        "checkerless.styles": str(net.styles),
        "checkerless.style_mix": ",".join(f"{w:g}" for w in net.selected),
        "checkerless.input": INPUT_CONVENTION,
        "checkerless.output": OUTPUT_CONVENTION,
        "checkerless.version": _version("checkerless"),
        "checkerless.torch": str(torch.__version__),
    }
    meta.update({k if k.startswith("checkerless.") else f"checkerless.{k}": str(v) for k, v in (extra or {}).items()})
    return meta


@contextlib.contextmanager
def _torch_jit() -> Iterator[None]:
    """torch 2.14 warns on every torch.jit call that it is deprecated; we know."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.\w+` is deprecated", category=FutureWarning)
        yield


def _frozen(net: TransformerNet) -> TransformerNet:
    """A copy on the CPU in eval mode: exporting leaves the caller's network as it was (it may
    be training on a GPU)."""
    return copy.deepcopy(net).float().cpu().eval()


@contextlib.contextmanager
def _written_atomically(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file next to `path`; on success it replaces `path` at once, so a
    reader never sees half a model. A folder that cannot be made or written is an OSError."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise type(e)(f"{path}: cannot make its folder ({e.strerror or e})") from None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.open("wb").close()
    except OSError as e:
        raise type(e)(f"{path}: cannot write there ({e.strerror or e})") from None
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def export_onnx(net: TransformerNet, path: str | Path, *, extra: Mapping[str, object] | None = None) -> Path:
    """Write `net` as one self-contained ONNX file (weights inside, opset OPSET) whose input
    `image` and output `stylized` have dynamic batch, height and width."""
    net = _frozen(net)
    example = torch.rand(1, 3, *EXAMPLE_SIZE, generator=torch.Generator().manual_seed(0)) * 255
    dims = {0: torch.export.Dim("batch", min=1), 2: torch.export.Dim("height", min=1),
            3: torch.export.Dim("width", min=1)}
    with _written_atomically(path) as tmp:
        try:
            program = torch.onnx.export(
                net, (example,), dynamo=True, opset_version=OPSET, dynamic_shapes=(dims,),
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], verbose=False,
            )
        except Exception as e:  # torch.export and the ONNX translation raise many kinds
            raise ExportError(f"ONNX export of the {net.decoder_label} network failed: {_first_line(e)}") from e
        graph = program.model.graph
        # The output has the input's size; say so with the same names ("batch", "height", "width")
        # rather than the exporter's formula for it.
        graph.outputs[0].shape = graph.inputs[0].shape
        program.model.metadata_props.update(metadata(net, extra))
        program.save(tmp, external_data=False)
    return Path(path)


def export_torchscript(net: TransformerNet, path: str | Path, *, extra: Mapping[str, object] | None = None) -> Path:
    """Write `net` compiled by torch.jit.script, with `checkerless.json` as an extra file."""
    net = _frozen(net)
    with _written_atomically(path) as tmp:
        with _torch_jit():
            try:
                scripted = torch.jit.script(net)
            except Exception as e:
                raise ExportError(f"TorchScript export of the {net.decoder_label} network failed: {_first_line(e)}") from e
            torch.jit.save(scripted, str(tmp), _extra_files={TORCHSCRIPT_METADATA: json.dumps(metadata(net, extra))})
    return Path(path)


def export_network(net: TransformerNet, path: str | Path, format: str, *,
                   extra: Mapping[str, object] | None = None) -> Path:
    if format == "onnx":
        return export_onnx(net, path, extra=extra)
    if format == "torchscript":
        return export_torchscript(net, path, extra=extra)
    raise ExportError(f"unknown export format {format!r}; valid: {', '.join(FORMATS)}")


# --- reading an export back ----------------------------------------------------------------


def exported_format(path: str | Path) -> str:
    """"torchscript" for a TorchScript archive (a zip file), else "onnx"."""
    p = Path(path)
    if not p.is_file():
        raise ExportError(f"{p}: no such file")
    return "torchscript" if zipfile.is_zipfile(p) else "onnx"


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata an export carries (see `metadata`)."""
    p = Path(path)
    if exported_format(p) == "torchscript":
        files = {TORCHSCRIPT_METADATA: ""}
        with _torch_jit():
            try:
                torch.jit.load(str(p), map_location="cpu", _extra_files=files)
            except Exception as e:
                raise ExportError(f"{p}: not a TorchScript file we can load ({_first_line(e)})") from None
        return json.loads(files[TORCHSCRIPT_METADATA] or "{}")
    import onnx

    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as e:
        raise ExportError(f"{p}: not an ONNX model ({type(e).__name__})") from None
    return {prop.key: prop.value for prop in model.metadata_props}


def load_exported(path: str | Path) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function (B, 3, H, W) float -> (B, 3, H, W) float that runs the file on the CPU:
    onnxruntime for ONNX, torch.jit.load for TorchScript."""
    p = Path(path)
    if exported_format(p) == "torchscript":
        try:
            with _torch_jit():
                module = torch.jit.load(str(p), map_location="cpu")
        except Exception as e:
            raise ExportError(f"{p}: not a TorchScript file we can load ({_first_line(e)})") from None

        def run_torchscript(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return module(x.float().cpu())

        return run_torchscript
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ExportError(f"{p}: not an ONNX model onnxruntime can load ({_first_line(e)})") from None

    def run_onnx(x: torch.Tensor) -> torch.Tensor:
        (y,) = session.run([OUTPUT_NAME], {INPUT_NAME: x.detach().float().cpu().contiguous().numpy()})
        return torch.from_numpy(y)

    return run_onnx


def to_8bit(t: torch.Tensor) -> torch.Tensor:
    """What a saved PNG holds: clamped to 0..255, then rounded (as models/images.from_tensor)."""
    return t.clamp(0, 255).round()


def max_8bit_difference(path: str | Path, net: TransformerNet, images: Iterable[torch.Tensor]) -> int:
    """The largest difference, in 8-bit levels, between the exported file's output and the
    eager network's on each image ((3, H, W) or (B, 3, H, W), RGB 0..255), both rounded to
    8 bits first. 0 or 1 means the same picture (a value can round either side of .5)."""
    run = load_exported(path)
    eager = _frozen(net)
    worst = 0
    for image in images:
        x = image.float().cpu()
        x = x.unsqueeze(0) if x.dim() == 3 else x
        with torch.no_grad():
            expected = eager(x)
        got = run(x)
        if got.shape != expected.shape:
            raise ExportError(f"{path}: gave {tuple(got.shape)} for an input of {tuple(x.shape)}")
        worst = max(worst, int((to_8bit(got) - to_8bit(expected)).abs().max()))
    return worst


def check_images() -> list[torch.Tensor]:
    """The built-in check: a photo at full size and at a smaller, odd size."""
    from models.builtin_images import BUILTIN_PHOTOS
    from models.images import resize_shorter, to_tensor

    photo = BUILTIN_PHOTOS[CHECK_PHOTO]()
    return [to_tensor(photo), to_tensor(resize_shorter(photo, CHECK_SHORTER_SIDE))]


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    decoder: str
    bytes: int
    seconds: float  # the export alone
    check_sizes: list[tuple[int, int]]  # (height, width) of each check image; empty: not checked
    max_8bit_diff: int | None  # None: not checked


def export_and_check(net: TransformerNet, path: str | Path, format: str, *, check: bool = True,
                     extra: Mapping[str, object] | None = None) -> ExportResult:
    """Export, then (check=True) compare the file with the eager network on `check_images()`."""
    start = time.perf_counter()
    out = export_network(net, path, format, extra=extra)
    seconds = time.perf_counter() - start
    images = check_images() if check else []
    diff = max_8bit_difference(out, net, images) if check else None
    return ExportResult(path=out, format=format, decoder=net.decoder_label, bytes=out.stat().st_size,
                        seconds=seconds, check_sizes=[tuple(i.shape[-2:]) for i in images], max_8bit_diff=diff)


def _first_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
