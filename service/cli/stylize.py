"""`checkerless stylize`: a trained network applied to image files, locally (no server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from models.config import STYLIZE_MEMORY_BUDGET_GIB

out = Console()
err = Console(stderr=True)


def stylize(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint written by `checkerless train`.")],
    inputs: Annotated[list[Path], typer.Argument(help="Image files and/or folders (searched recursively).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the stylised PNGs.")] = Path("stylized"),
    device: Annotated[str, typer.Option(help="auto, cpu or gpu.")] = "auto",
    tile: Annotated[Optional[int], typer.Option(help="Stylise in tiles of this many pixels (a multiple of 4, at least 64), with whole-image statistics. Default: only images too large for --memory-budget.")] = None,
    memory_budget: Annotated[float, typer.Option(help="GiB an untiled image may take; larger ones are tiled.", min=0.01)] = STYLIZE_MEMORY_BUDGET_GIB,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Stylise images with a trained network: one PNG per input, same size as the input."""
    from models.stylize import stylize_files

    results, skipped = stylize_files(checkpoint, inputs, out_dir, device=device, tile=tile,
                                     memory_budget=int(memory_budget * 2**30))
    if as_json:
        print(json.dumps({"outputs": [{"input": str(r.source), "output": str(r.output), "width": r.size[0],
                                       "height": r.size[1]} for r in results],
                          "skipped": [{"file": f, "reason": r} for f, r in skipped]}, indent=2))
        return
    for f, r in skipped:
        err.print(f"[yellow]skipped[/] {r}")
    for r in results:
        out.print(f"{r.source} -> {r.output} ({r.size[0]}x{r.size[1]})")
