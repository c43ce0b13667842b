"""`checkerless export` as a user runs it: a trained checkpoint in, a file that onnxruntime
(or torch.jit.load) runs at any size out; bad input is one line on stderr."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.test_cli import TINY, assert_one_line_error, cli


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    p = cli("train", "brick", "--decoder", "subpixel,deconv", "--steps", "1", *TINY, "--out", out, "--json")
    assert p.returncode == 0, p.stderr
    return Path(json.loads(p.stdout)["checkpoint"])


# One ONNX export of the trained network (the network users export: filtered ReLUs, blur-stride)
# in this module: it costs most of the module's time. It runs as a user first would, with no
# --format and no --out; --out (into a folder to be made) and --no-check are tested below with
# TorchScript, whose export takes a second: both options are the same code for either format.
@pytest.mark.slow  # trains a checkpoint (once), then exports and checks in a new process
def test_export_onnx_then_run_it_with_onnxruntime(checkpoint):
    import onnxruntime as ort

    target = checkpoint.with_suffix(".onnx")  # the default: ONNX, next to the checkpoint
    p = cli("export", checkpoint, "--json")
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout)
    assert result["out"] == str(target) and result["format"] == "onnx"
    assert result["decoder"] == "subpixel,deconv" and result["style"] == "brick"
    assert result["check"]["runtime"] == "onnxruntime" and len(result["check"]["sizes"]) == 2
    assert result["check"]["max_8bit_diff"] <= 1

    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["checkerless.decoder"] == "subpixel,deconv" and meta["checkerless.step"] == "1"
    for h, w in [(37, 45), (64, 48)]:
        x = np.random.default_rng(0).uniform(0, 255, (1, 3, h, w)).astype(np.float32)
        (y,) = session.run(None, {"image": x})
        assert y.shape == (1, 3, h, w) and np.isfinite(y).all()
    target.unlink()


@pytest.mark.slow  # trains a checkpoint (once), then exports and checks in a new process
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_export_torchscript_for_people(checkpoint, tmp_path):
    import torch

    target = tmp_path / "models" / "net.pt"  # the folder is made
    p = cli("export", checkpoint, "--format", "torchscript", "--out", target)
    assert p.returncode == 0, p.stderr
    assert "torchscript" in p.stdout and "8-bit level" in p.stdout
    module = torch.jit.load(str(target))
    assert module(torch.rand(1, 3, 21, 30) * 255).shape == (1, 3, 21, 30)


@pytest.mark.slow  # trains a checkpoint (once), then exports in a new process
def test_export_next_to_the_checkpoint_without_a_check(checkpoint):
    p = cli("export", checkpoint, "--format", "torchscript", "--no-check", "--json")
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout)
    assert result["check"] is None and result["format"] == "torchscript"
    assert result["out"] == str(checkpoint.with_suffix(".pt"))  # the format's suffix, next to the checkpoint
    checkpoint.with_suffix(".pt").unlink()


def test_help():
    p = cli("export", "--help")
    assert p.returncode == 0 and "Usage" in p.stdout and "--format" in p.stdout


def test_a_missing_or_corrupt_checkpoint_or_an_unknown_format_is_one_line(tmp_path):
    fake = tmp_path / "fake.ckpt"
    fake.write_text("not a checkpoint")
    assert_one_line_error(cli("export", "nothing.ckpt", cwd=tmp_path), "no such checkpoint")
    assert_one_line_error(cli("export", fake), "not a checkpoint")
    p = cli("export", fake, "--format", "tflite")
    assert_one_line_error(p, "--format", "tflite")
    assert p.returncode == 2


@pytest.mark.slow
def test_an_unwritable_out_is_one_line(checkpoint, tmp_path):
    fake = tmp_path / "fake.ckpt"
    fake.write_text("a file, not a folder")
    p = cli("export", checkpoint, "--format", "torchscript", "--out", fake / "net.pt", "--no-check")
    assert_one_line_error(p, "net.pt", "cannot make its folder")
    assert p.returncode == 1
    assert_one_line_error(cli("export", checkpoint, "--format", "torchscript", "--out", tmp_path), "is a folder")
