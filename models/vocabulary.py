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
        DecoderInfo("deconv-zoh", "ConvTranspose2d k3 s2 p1 output_padding 1, then a fixed 2x2 box "
                    "(zero-order hold: free of the checkerboard for any weights, Sugawara et al. 2019)", "none"),
        DecoderInfo("resize-lowpass", "zero-insert x2, fixed Kaiser-windowed sinc low-pass (each phase sums to 1), "
                    "reflection pad, conv k3 s1 (filtered upsampling, after Karras et al. 2021)", "none"),
    ]
}
LOSS_NETWORKS = ("vgg19", "vgg16", "vgg19-random")
# The loss network's pooling layers: VGG's max pooling, or average pooling (the article's
# gradient section blames max pooling's uneven gradients for checkerboards in gradients).
LOSS_POOLINGS = ("max", "avg")
# What measured a style or content distance, written beside it in records and reports
# (models/quality.py): the fixed yardstick (VGG19 with max pooling, the same for every run), or,
# for records made before it, each run's own loss network.
QUALITY_MEASURE = "vgg19-max"
QUALITY_MEASURE_OLD = "run-loss-network"
# The stability loss's shift (models/losses.py stability_loss): "one", the input moved one
# pixel diagonally at every step; "subgrid", moved by a shift drawn at each step from seed and
# step, 0 to 3 pixels on each axis (not both 0): every shift that the residual blocks' grid,
# four pixels apart, does not make equivariant by construction.
STABILITY_SHIFTS = ("one", "subgrid")
# Arithmetic precision of a run: auto (bf16 where the machine has bf16 matrix units), fp32, bf16.
PRECISIONS = ("auto", "32", "bf16")


@dataclass(frozen=True)
class DownsampleInfo:
    name: str
    layer: str  # what the layer does
    reference: str  # where it comes from


# The encoder's two x1/2 stages (the other end of the network from the decoder). The 3x3 conv
# of every kind has the same shape (in, out, 3, 3), so networks built with one seed share it.
DOWNSAMPLE_INFO: dict[str, DownsampleInfo] = {
    d.name: d
    for d in [
        DownsampleInfo("stride-conv", "reflection pad, conv k3 s2 (Johnson et al.'s original)",
                       "Johnson et al. 2016"),
        DownsampleInfo("blur-stride", "reflection pad, conv k3 s1, [1,2,1]x[1,2,1] blur, subsample by 2 "
                       "(anti-aliased downsampling)", "Zhang 2019, Making Convolutional Networks Shift-Invariant Again"),
        DownsampleInfo("lowpass-stride", "reflection pad, conv k3 s1, the Kaiser low-pass of resize-lowpass, "
                       "subsample by 2 (filtered downsampling)",
                       "Karras et al. 2021, Alias-Free Generative Adversarial Networks"),
        DownsampleInfo("resize-down", "2x2 average pool (area resize to half), reflection pad, conv k3 s1",
                       "the article's closing remark on strided convolutions"),
    ]
}
DOWNSAMPLE_STAGES = 2


def _parse_stages(spec: str | Sequence[str], *, stages: int, what: str, stage_kind: str,
                  valid: Sequence[str]) -> tuple[str, ...]:
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s).strip() for s in spec]
    if len(names) == 1:
        names = names * stages
    if len(names) != stages:
        raise ValueError(
            f"{what} needs one name or {stages} (one per {stage_kind} stage), got {len(names)}: "
            f"{','.join(names)!r}"
        )
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ValueError(
            f"unknown {what} {unknown[0]!r}; valid names: {', '.join(valid)}"
            " (or one per stage, comma-separated)"
        )
    return tuple(names)


def parse_decoder(spec: str | Sequence[str], *, stages: int = 2) -> tuple[str, ...]:
    """One name for every stage, or one per stage (first stage first), as a list or a
    comma-separated string: "resize-nearest,deconv" is deconv in the last layer only."""
    return _parse_stages(spec, stages=stages, what="decoder", stage_kind="upsampling", valid=tuple(DECODER_INFO))


def parse_downsample(spec: str | Sequence[str], *, stages: int = DOWNSAMPLE_STAGES) -> tuple[str, ...]:
    """The encoder's downsampling, like the decoder: one name for both stages, or one per
    stage (first stage first), as a list or a comma-separated string."""
    return _parse_stages(spec, stages=stages, what="downsample", stage_kind="downsampling",
                         valid=tuple(DOWNSAMPLE_INFO))


def decoder_label(names: Sequence[str]) -> str:
    """The canonical text form: one name when every stage is the same."""
    return names[0] if len(set(names)) == 1 else ",".join(names)


def downsample_label(names: Sequence[str]) -> str:
    """The canonical text form of a downsampling choice: one name when both stages agree."""
    return decoder_label(names)


# The export formats and their file suffixes (models/export.py writes them; the store keys
# and the API name them): here, torch-free, so the job core reads the same table.
EXPORT_SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}


@dataclass(frozen=True)
class BuiltinStyleInfo:
    name: str
    title: str
    source: str  # the function of skimage.data that returns it (shipped in its wheel)


# Images with strong texture and colour, usable as a style without a file of one's own: the
# CLI's names, the API's "builtin:<name>", the web form's thumbnails (models/data.py loads them).
BUILTIN_STYLE_INFO: dict[str, BuiltinStyleInfo] = {
    s.name: s
    for s in [
        BuiltinStyleInfo("ihc", "Immunohistochemistry (stained tissue)", "immunohistochemistry"),
        BuiltinStyleInfo("hubble", "Hubble deep field", "hubble_deep_field"),
        BuiltinStyleInfo("colorwheel", "Colour wheel", "colorwheel"),
        BuiltinStyleInfo("gravel", "Gravel (grey texture)", "gravel"),
        BuiltinStyleInfo("brick", "Brick wall (grey texture)", "brick"),
    ]
}
