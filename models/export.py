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

A network of several styles is exported to ONNX with a second input, `mix` (float32, one
weight per style, normalised in the graph as TransformerNet.select_style normalises them),
which sets every conditional instance norm's mix: one file stylises any style or blend of them
(the live page's style sliders). The mix selected at export is recorded as the default
(`checkerless.style_mix`); `load_exported` feeds it when no mix is given. A one-style network
keeps its single input, so older files and their users are unchanged. TorchScript keeps the
selected mix baked in (scripting a second input through the network's modules would mean
changing models/blocks.py); a libtorch user exports once per style or mix.

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
MIX_NAME = "mix"  # the second ONNX input of a several-style network
MIX_CONVENTION = ("float32 (styles,): one weight >= 0 per style, not all 0; normalised to sum 1 in the graph "
                  "(as TransformerNet.select_style); checkerless.style_mix is the default")
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


def metadata(net: TransformerNet, extra: Mapping[str, object] | None = None, *,
             mix_input: bool = False) -> dict[str, str]:
    """What an exported file says about itself (all strings: ONNX metadata_props are)."""
    meta = {
        "checkerless.decoder": net.decoder_label,
        "checkerless.downsample": net.downsample_label,
        # The style (or mix) selected at export: baked in without a mix input (TorchScript),
        # the default for the `mix` input with one (ONNX of several styles).
        "checkerless.styles": str(net.styles),
        "checkerless.style_mix": ",".join(f"{w:g}" for w in net.selected),
        "checkerless.inputs": f"{INPUT_NAME},{MIX_NAME}" if mix_input else INPUT_NAME,
        "checkerless.input": INPUT_CONVENTION,
        **({"checkerless.mix": MIX_CONVENTION} if mix_input else {}),
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


class _WithMixInput(torch.nn.Module):
    """`net` with its conditional instance norms' mix as a second input: their `mix` buffers
    are replaced for the call (torch.func.functional_call), so the exported graph reads them
    from the input instead of holding constants."""

    def __init__(self, net: TransformerNet):
        super().__init__()
        self.net = net
        self.mix_buffers = [name for name, b in net.named_buffers() if name.rsplit(".", 1)[-1] == "mix"]

    def forward(self, image: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
        weights = mix.to(image.dtype) / mix.to(image.dtype).sum()  # as select_style normalises
        return torch.func.functional_call(self.net, {name: weights for name in self.mix_buffers}, (image,))


def export_onnx(net: TransformerNet, path: str | Path, *, extra: Mapping[str, object] | None = None) -> Path:
    """Write `net` as one self-contained ONNX file (weights inside, opset OPSET) whose input
    `image` and output `stylized` have dynamic batch, height and width; a network of several
    styles also takes `mix` (see the module's docstring)."""
    net = _frozen(net)
    example = torch.rand(1, 3, *EXAMPLE_SIZE, generator=torch.Generator().manual_seed(0)) * 255
    dims = {0: torch.export.Dim("batch", min=1), 2: torch.export.Dim("height", min=1),
            3: torch.export.Dim("width", min=1)}
    mix_input = net.styles > 1
    module, args, shapes, names = net, (example,), (dims,), [INPUT_NAME]
    if mix_input:
        module, args = _WithMixInput(net).eval(), (example, torch.tensor(net.selected, dtype=torch.float32))
        shapes, names = (dims, None), [INPUT_NAME, MIX_NAME]
    with _written_atomically(path) as tmp:
        try:
            program = torch.onnx.export(
                module, args, dynamo=True, opset_version=OPSET, dynamic_shapes=shapes,
                input_names=names, output_names=[OUTPUT_NAME], verbose=False,
            )
        except Exception as e:  # torch.export and the ONNX translation raise many kinds
            raise ExportError(f"ONNX export of the {net.decoder_label} network failed: {_first_line(e)}") from e
        graph = program.model.graph
        # The output has the input's size; say so with the same names ("batch", "height", "width")
        # rather than the exporter's formula for it.
        graph.outputs[0].shape = graph.inputs[0].shape
        program.model.metadata_props.update(metadata(net, extra, mix_input=mix_input))
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


def load_exported(path: str | Path, *, mix: Iterable[float] | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function (B, 3, H, W) float -> (B, 3, H, W) float that runs the file on the CPU:
    onnxruntime for ONNX, torch.jit.load for TorchScript. `mix`: the weights fed to an ONNX
    file's `mix` input (default: the mix it was exported with); an error for a file without
    one (one style, or TorchScript: its mix is fixed)."""
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

        if mix is not None:
            raise ExportError(f"{p}: a TorchScript export has its mix baked in; it takes no mix")
        return run_torchscript
    import numpy as np
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ExportError(f"{p}: not an ONNX model onnxruntime can load ({_first_line(e)})") from None
    inputs = {}
    if MIX_NAME in {i.name for i in session.get_inputs()}:
        if mix is None:
            mix = [float(w) for w in session.get_modelmeta().custom_metadata_map["checkerless.style_mix"].split(",")]
        inputs[MIX_NAME] = np.asarray(list(mix), dtype=np.float32)
    elif mix is not None:
        raise ExportError(f"{p}: this file has no {MIX_NAME!r} input (a one-style network)")

    def run_onnx(x: torch.Tensor) -> torch.Tensor:
        (y,) = session.run([OUTPUT_NAME], {INPUT_NAME: x.detach().float().cpu().contiguous().numpy(), **inputs})
        return torch.from_numpy(y)

    return run_onnx


def to_8bit(t: torch.Tensor) -> torch.Tensor:
    """What a saved PNG holds: clamped to 0..255, then rounded (as models/images.from_tensor)."""
    return t.clamp(0, 255).round()


def max_8bit_difference(path: str | Path, net: TransformerNet, images: Iterable[torch.Tensor], *,
                        mix: Iterable[float] | None = None) -> int:
    """The largest difference, in 8-bit levels, between the exported file's output and the
    eager network's on each image ((3, H, W) or (B, 3, H, W), RGB 0..255), both rounded to
    8 bits first. 0 or 1 means the same picture (a value can round either side of .5).
    `mix`: both run with these style weights (the file through its `mix` input); without it
    the eager network runs as selected and the file with its own default mix."""
    run = load_exported(path, mix=None if mix is None else list(mix))
    eager = _frozen(net)
    if mix is not None:
        eager.select_style(list(mix))
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
    if check and MIX_NAME in read_metadata(out).get("checkerless.inputs", "").split(","):
        # the mix input too: an even blend of every style, unlike the default (one style)
        diff = max(diff, max_8bit_difference(out, net, images, mix=[1.0] * net.styles))
    return ExportResult(path=out, format=format, decoder=net.decoder_label, bytes=out.stat().st_size,
                        seconds=seconds, check_sizes=[tuple(i.shape[-2:]) for i in images], max_8bit_diff=diff)


def _first_line(e: BaseException) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
