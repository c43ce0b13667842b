"""The names every part speaks (API, CLI, config, reports), with no torch import: the API
validates requests with these without loading PyTorch. The layers themselves are built in
models/blocks.py, one builder per name here (a test checks they match)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class DecoderInfo:
    name: str
    layer: str  # what the layer does
    overlap: str  # "uneven", "even" or "none": how kernel footprints overlap in the output


DECODER_INFO: dict[str, DecoderInfo] = {
    d.name: d
    for d in [
        DecoderInfo("deconv", "ConvTranspose2d k3 s2 p1 output_padding 1 (Johnson et al.'s original)", "uneven"),
        DecoderInfo("deconv4", "ConvTranspose2d k4 s2 p1", "even"),
        DecoderInfo("resize-nearest", "nearest x2, reflection pad, conv k3 s1 (the article's fix)", "none"),
        DecoderInfo("resize-bilinear", "bilinear x2, reflection pad, conv k3 s1", "none"),
        DecoderInfo("subpixel", "conv k3 to 4C, PixelShuffle(2), ICNR init", "even"),
    ]
}
LOSS_NETWORKS = ("vgg19", "vgg16", "vgg19-random")


def parse_decoder(spec: str | Sequence[str], *, stages: int = 2) -> tuple[str, ...]:
    """One name for every stage, or one per stage (first stage first), as a list or a
    comma-separated string: "resize-nearest,deconv" is deconv in the last layer only."""
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s).strip() for s in spec]
    if len(names) == 1:
        names = names * stages
    if len(names) != stages:
        raise ValueError(
            f"decoder needs one name or {stages} (one per upsampling stage), got {len(names)}: "
            f"{','.join(names)!r}"
        )
    unknown = [n for n in names if n not in DECODER_INFO]
    if unknown:
        raise ValueError(
            f"unknown decoder {unknown[0]!r}; valid names: {', '.join(DECODER_INFO)}"
            " (or one per stage, comma-separated)"
        )
    return tuple(names)


def decoder_label(names: Sequence[str]) -> str:
    """The canonical text form: one name when every stage is the same."""
    return names[0] if len(set(names)) == 1 else ",".join(names)


# The export formats and their file suffixes (models/export.py writes them; the store keys
# and the API name them): here, torch-free, so the job core reads the same table.
EXPORT_SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}
