"""Exported networks (ONNX under onnxruntime, TorchScript under torch.jit.load) compute what
the eager network computes, for every decoder, at sizes other than the exporter's example,
odd ones included."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from models.blocks import DECODERS
from models.export import (
    EXAMPLE_SIZE,
    FORMATS,
    SUFFIXES,
    ExportError,
    export_and_check,
    export_network,
    exported_format,
    load_exported,
    max_8bit_difference,
    read_metadata,
)
from models.transformer_net import TransformerNet
from models.vocabulary import DOWNSAMPLE_INFO, decoder_label, parse_decoder

# Every registered decoder, and a per-stage mix.
VARIANTS = [*DECODERS, "resize-nearest,deconv"]
# A multiple of 4, an odd size (padded inside the network), and one under the network's minimum
# inner size of 8 (padded to 8): none of them is the exporter's example.
SIZES = [(40, 52), (37, 45), (3, 5)]


def photo(height: int, width: int) -> torch.Tensor:
    """scikit-image's astronaut at height x width, (3, H, W) RGB 0..255."""
    import skimage.data

    img = Image.fromarray(skimage.data.astronaut()).resize((width, height), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.asarray(img, dtype=np.float32)).permute(2, 0, 1).contiguous()


def small_net(decoder: str) -> TransformerNet:
    """Seeded, untrained. One residual block instead of five keeps ONNX export at ~2 s a
    decoder; the decoders, the padding and the crop are what differ between exports."""
    torch.manual_seed(0)
    return TransformerNet(decoder=decoder, residual_blocks=1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """`exported(decoder, fmt)`: (small_net(decoder), its export), made once per module and
    shared by the tests that read the same file (an ONNX export costs 7-15 CPU-seconds here;
    each test checks something else of it). Exported with a style in its metadata, for
    test_metadata_says_what_the_file_holds; the other tests do not read it. Nothing here
    changes the network or the file (export_network exports a copy)."""
    folder = tmp_path_factory.mktemp("exports")
    done: dict[tuple[str, str], tuple[TransformerNet, object]] = {}

    def export(decoder: str, fmt: str):
        if (decoder, fmt) not in done:
            net = small_net(decoder)
            done[decoder, fmt] = net, export_network(net, folder / f"{decoder}{SUFFIXES[fmt]}", fmt,
                                                     extra={"style": "brick"})
        return done[decoder, fmt]

    return export


# ONNX export takes ~2 CPU-seconds a network (torch.export, then the translation): the ONNX
# half of the matrix is marked slow; `-m "not slow"` still exports ONNX in the tests below.
@pytest.mark.parametrize("decoder, fmt", [
    pytest.param(d, f, marks=[pytest.mark.slow] if f == "onnx" else [], id=f"{d}-{f}")
    for d in VARIANTS for f in FORMATS
])
def test_export_matches_eager_at_other_sizes(decoder, fmt, exported):
    assert EXAMPLE_SIZE not in SIZES
    net, path = exported(decoder, fmt)
    assert exported_format(path) == fmt
    images = [photo(h, w) for h, w in SIZES]
    assert max_8bit_difference(path, net, images) <= 1
    batch = torch.stack([photo(37, 45), photo(37, 45).flip(-1)])  # the batch is dynamic too
    assert max_8bit_difference(path, net, [batch]) <= 1
    assert read_metadata(path)["checkerless.decoder"] == decoder_label(parse_decoder(decoder))


def test_the_exported_output_has_the_input_size_and_values(exported):
    net, path = exported("deconv", "onnx")  # the file test_export_matches_eager_at_other_sizes[deconv-onnx] checks
    assert exported_format(path) == "onnx"
    run = load_exported(path)
    sizes = [(1, 1), (4, 4), (8, 9), (61, 30)]
    for h, w in sizes:
        assert run(photo(h, w)[None]).shape == (1, 3, h, w)
    assert max_8bit_difference(path, net, [photo(h, w) for h, w in sizes]) <= 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_metadata_says_what_the_file_holds(fmt, exported):
    _, path = exported("subpixel", fmt)  # exported with extra={"style": "brick"}
    meta = read_metadata(path)
    assert meta["checkerless.decoder"] == "subpixel"
    assert meta["checkerless.input"].startswith("RGB float32 0..255, NCHW")
    assert meta["checkerless.version"] and meta["checkerless.style"] == "brick"
    if fmt == "onnx":
        import onnx

        model = onnx.load(str(path))
        dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
                for v in (*model.graph.input, *model.graph.output)]
        assert dims == [["batch", 3, "height", "width"]] * 2


@pytest.mark.parametrize("downsample", list(DOWNSAMPLE_INFO))
def test_every_downsampling_with_filtered_relus_exports_to_torchscript(downsample, tmp_path):
    """The encoder's kinds, each with the defaults' filtered ReLUs and resize-lowpass (the
    fixed filters are buffers and their reach an attribute, which TorchScript compiles)."""
    torch.manual_seed(0)
    net = TransformerNet(decoder="resize-lowpass", downsample=downsample, residual_blocks=1, filtered_relu=True)
    path = export_network(net, tmp_path / "net.pt", "torchscript")
    assert max_8bit_difference(path, net, [photo(40, 52), photo(37, 45)]) <= 1


def test_padding_nothing_changes_nothing():
    """forward always pads (a zero pad at multiples of 4) so that exports have no branch on
    the size: the eager output is the same as without the pad."""
    net = small_net("deconv").eval()
    x = photo(40, 52)[None]
    with torch.no_grad():
        assert torch.equal(net(x), net.to_rgb(net.upsample(net.residuals(net.encoder(x)))))


def test_export_leaves_the_network_as_it_was(tmp_path):
    net = small_net("resize-nearest").train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    export_network(net, tmp_path / "net.pt", "torchscript")
    assert net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_bad_paths_and_files(tmp_path):
    net = small_net("deconv")
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(OSError):
        export_network(net, blocker / "net.pt", "torchscript")
    with pytest.raises(IsADirectoryError):
        export_network(net, tmp_path, "torchscript")
    with pytest.raises(ExportError, match="unknown export format"):
        export_network(net, tmp_path / "net.x", "tflite")
    assert list(tmp_path.iterdir()) == [blocker]  # no temporary file left behind
    with pytest.raises(ExportError, match="not an ONNX model"):
        load_exported(blocker)
    with pytest.raises(ExportError, match="no such file"):
        load_exported(tmp_path / "missing.onnx")


def three_style_net() -> TransformerNet:
    """Seeded, untrained, three styles made to differ, their mix [0, 1, 3] selected."""
    torch.manual_seed(0)
    net = TransformerNet(decoder="resize-nearest", downsample="blur-stride", styles=3, residual_blocks=1)
    with torch.no_grad():  # untrained styles are all the same: make them differ
        for m in net.modules():
            if hasattr(m, "mix"):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return net.select_style([0.0, 1.0, 3.0])


@pytest.fixture(scope="module")
def three_style_onnx(tmp_path_factory):
    """The several-style network's ONNX file, exported and checked once by export_and_check (the
    user's path: its default mix and an even blend of every style, on the built-in check images)
    and read by both tests below."""
    return export_and_check(three_style_net(), tmp_path_factory.mktemp("styles") / "three.onnx", "onnx")


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_several_style_network_exports_with_its_selected_mix_baked_in(fmt, tmp_path, request):
    net = three_style_net()
    if fmt == "onnx":  # the mix selected at export is the file's default for its `mix` input
        path = request.getfixturevalue("three_style_onnx").path
    else:
        path = export_network(net, tmp_path / f"net{SUFFIXES[fmt]}", fmt)
    images = [photo(37, 45)]
    assert max_8bit_difference(path, net, images) <= 1
    meta = read_metadata(path)
    assert (meta["checkerless.styles"], meta["checkerless.style_mix"]) == ("3", "0,0.25,0.75")
    assert meta["checkerless.downsample"] == "blur-stride"
    assert max_8bit_difference(path, net.select_style(0), images) > 1  # another style: another output


def test_a_several_style_onnx_export_takes_the_mix_as_an_input(three_style_onnx, exported):
    """One file for every style and blend: the `mix` input sets the conditional instance norms'
    mix (normalised in the graph), matching the eager network at that mix; without a mix the
    file runs its exported default. A one-style export keeps its single input."""
    import onnxruntime as ort

    net, result = three_style_net(), three_style_onnx
    assert result.max_8bit_diff <= 1  # the default mix and an even blend, checked by the export itself
    assert len(result.check_sizes) == 2
    names = [i.name for i in ort.InferenceSession(str(result.path)).get_inputs()]
    assert names == ["image", "mix"]
    assert read_metadata(result.path)["checkerless.inputs"] == "image,mix"
    images = [photo(37, 45)]
    # one style other than the default, weights that are not normalised, and an even blend
    for mix in ([1.0, 0.0, 0.0], [3.0, 1.0, 0.0], [0.5, 0.5, 0.5]):
        assert max_8bit_difference(result.path, net, images, mix=mix) <= 1
    # the file's default is its exported mix (0, 0.25, 0.75), not style 1
    assert max_8bit_difference(result.path, net.select_style(1), images) > 1
    _, one = exported("resize-nearest", "onnx")  # a one-style network: TransformerNet(residual_blocks=1)
    assert [i.name for i in ort.InferenceSession(str(one)).get_inputs()] == ["image"]
    assert read_metadata(one)["checkerless.inputs"] == "image"
    with pytest.raises(ExportError, match="no 'mix' input"):
        load_exported(one, mix=[1.0])
