"""`checkerless stylize` and `stylize-video` as a user runs them: a process of its own
(tests/cli_process.py) on a real two-style checkpoint, its files, its exit code and its
one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import rgb_noise
from tests.models.test_video import audio_peak_hz, make_video
from tests.test_cli import TINY, assert_one_line_error

from tests.test_cli import cli


@pytest.fixture(scope="module")
def two_styles(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("two")
    # A large learning rate: two steps (one per style) move each style's norm parameters visibly.
    p = cli("train", "ihc", "colorwheel", "--steps", "2", "--lr", "0.3", *TINY, "--out", out, "--json")
    assert p.returncode == 0, p.stderr
    return Path(json.loads(p.stdout)["checkpoint"])


def test_each_style_a_mix_and_strengths(two_styles, tmp_path):
    """The options through the CLI once, and through stylize_files (what it calls) for the rest."""
    from models.stylize import stylize_files

    photo = tmp_path / "photo.png"
    rgb_noise(34, 40).save(photo)
    original = np.asarray(Image.open(photo), dtype=np.int16)

    def run(name: str, **options) -> np.ndarray:
        results, _ = stylize_files(two_styles, [photo], tmp_path / name, device="cpu", **options)
        with Image.open(results[0].output) as img:
            return np.asarray(img, dtype=np.int16)

    s0, s1, mix, default = run("s0", style=0), run("s1", style=1), run("mix", style=[0.5, 0.5]), run("d")
    assert s0.shape == (34, 40, 3) and np.array_equal(default, s0)
    assert np.abs(s0 - s1).mean() > 0.2 and np.abs(mix - s0).mean() > 0.05 and np.abs(mix - s1).mean() > 0.05
    assert np.array_equal(run("zero", style=1, strength=0.0), original)
    assert np.abs(run("half", style=1, strength=0.5) - (original + s1) / 2).max() <= 1  # the blend, to rounding

    p = cli("stylize", two_styles, photo, "--out", tmp_path / "cli", "--mix", "0.5,0.5", "--strength", "0.5",
            "--colors", "luminance", "--json")
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout)
    assert result["options"] == {"style": None, "mix": [0.5, 0.5], "strength": 0.5, "colors": "luminance"}
    with Image.open(result["outputs"][0]["output"]) as img:
        assert np.array_equal(np.asarray(img, dtype=np.int16), run("same", style=[0.5, 0.5], strength=0.5, colors="luminance"))


@pytest.mark.parametrize("extra, code, fragments", [
    (["--strength", "2"], 2, ["--strength", "between 0 and 1"]),
    (["--colors", "sepia"], 2, ["--colors", "valid: style, luminance, histogram"]),
    (["--mix", "0.5;0.5"], 2, ["--mix", "not a number"]),
    (["--style", "1", "--mix", "1,1"], 2, ["not both"]),
    (["--style", "2"], 1, ["style 2 does not exist", "2 style(s)"]),
])
def test_bad_options_are_one_line(two_styles, tmp_path, extra, code, fragments):
    photo = tmp_path / "p.png"
    rgb_noise(20, 20).save(photo)
    p = cli("stylize", two_styles, photo, "--out", tmp_path / "o", *extra)
    assert_one_line_error(p, *fragments)
    assert p.returncode == code
    assert not (tmp_path / "o").exists()


def test_stylize_video(two_styles, tmp_path):
    src = make_video(tmp_path / "in.mp4")
    p = cli("stylize-video", two_styles, src, "--out", tmp_path / "out.mp4", "--mix", "1,3", "--strength", "0.8",
            "--colors", "histogram", "--json")
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert (r["frames"], r["fps"], r["width"], r["height"], r["has_audio"]) == (8, 8.0, 48, 40, True)
    assert set(r["flicker"]) == {"input", "output"} and r["options"]["mix"] == [1.0, 3.0]
    assert abs(audio_peak_hz(tmp_path / "out.mp4") - 440) < 5
    p = cli("stylize-video", two_styles, src, "--out", tmp_path / "people.mp4")  # for people: a summary, no JSON
    assert p.returncode == 0, p.stderr
    said = " ".join(p.stdout.split())
    assert "8 frames, 48x40 at 8 fps, audio kept" in said and "flicker" in said
    assert_one_line_error(cli("stylize-video", two_styles, src, "--out", tmp_path / "x.gif"), "--out", ".mp4")
    assert_one_line_error(cli("stylize-video", two_styles, tmp_path / "nope.mp4"), "nope.mp4", "no such file")
