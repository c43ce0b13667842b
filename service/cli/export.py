"""`checkerless export`: a trained network as one ONNX or TorchScript file, for any batch,
height and width, checked against the network it came from (models/export.py)."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

out = Console()

MAX_8BIT_DIFF = 1  # a value may round to either side of .5: one level is the same picture


class Format(str, Enum):
    onnx = "onnx"
    torchscript = "torchscript"


def export(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint written by `checkerless train`.")],
    fmt: Annotated[Format, typer.Option("--format", help="onnx (onnxruntime and other runtimes) or torchscript (torch.jit.load, libtorch).")] = Format.onnx,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="File to write (default: the checkpoint's path with .onnx or .pt).")] = None,
    check: Annotated[bool, typer.Option("--check/--no-check", help="Run the file on a built-in photo at two sizes (CPU) and compare with the network, in 8-bit levels.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Export a trained network: RGB float 0..255 in, NCHW, any size; the decoder and conventions are in the file's metadata."""
    from models.checkpoint import load_network
    from models.export import SUFFIXES, ExportError, export_and_check

    net, info = load_network(checkpoint)
    target = out_file if out_file is not None else checkpoint.with_suffix(SUFFIXES[fmt.value])
    result = export_and_check(net, target, fmt.value, check=check,
                              extra={"style": info.style_name, "step": info.step, "checkpoint": checkpoint.name})
    runtime = "onnxruntime" if fmt is Format.onnx else "torch.jit.load"
    if result.max_8bit_diff is not None and result.max_8bit_diff > MAX_8BIT_DIFF:
        raise ExportError(f"{result.path}: differs from the network by {result.max_8bit_diff} 8-bit levels under "
                          f"{runtime} (at most {MAX_8BIT_DIFF} expected); the file is kept for inspection")
    sizes = [f"{h}x{w}" for h, w in result.check_sizes]
    if as_json:
        print(json.dumps({
            "checkpoint": str(checkpoint), "out": str(result.path), "format": result.format, "decoder": result.decoder,
            "style": info.style_name, "step": info.step, "bytes": result.bytes, "seconds": round(result.seconds, 2),
            "check": None if not check else {"runtime": runtime, "sizes": sizes, "max_8bit_diff": result.max_8bit_diff},
        }, indent=2))
        return
    out.print(f"{checkpoint} ({info.style_name}, {result.decoder}, step {info.step}) -> {result.path}: "
              f"{result.format}, {result.bytes / 1e6:.1f} MB, exported in {result.seconds:.1f}s", highlight=False, soft_wrap=True)
    if check:
        out.print(f"checked under {runtime} (CPU) at {' and '.join(sizes)}: the file's output is at most "
                  f"{result.max_8bit_diff} 8-bit level from the network's", highlight=False, soft_wrap=True)
