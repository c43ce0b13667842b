"""`checkerless artifacts ...` as a user runs it."""

import json

import pytest
from PIL import Image

from tests.conftest import rgb_noise
from tests.cli_process import run_cli
from tests.test_cli import assert_one_line_error, cli


def test_score_images_and_plot_their_spectra(tmp_path):
    import numpy as np
    import skimage.data

    photo = tmp_path / "photo.png"
    Image.fromarray(skimage.data.coffee()).save(photo)
    board = tmp_path / "board.png"
    i, j = np.indices((64, 64))
    Image.fromarray((((i + j) % 2) * 255).astype(np.uint8)).save(board)
    p = cli("artifacts", "score", photo, board, "--json", "--plot", tmp_path / "plots")
    assert p.returncode == 0, p.stderr
    rows = {r["image"].rsplit("/", 1)[1]: r for r in json.loads(p.stdout)["scores"]}
    assert rows["photo.png"]["period2_db"] < -5 < 20 < rows["board.png"]["period2_db"]
    assert rows["board.png"]["period8_db"] < 0 and not any(k.startswith("eq_t") for k in rows["photo.png"])  # no network
    assert Image.open(rows["board.png"]["spectrum"]).format == "PNG"
    # The literature's measures beside ours: a photo's tail decays (Dzanic et al.), the board's does not,
    # and the board's radial spectrum (Durall et al.) peaks at the corner ring, where a pixel checkerboard lives.
    assert rows["photo.png"]["decay"] > 1.5 > rows["board.png"]["decay"]
    radial = rows["board.png"]["radial_spectrum"]
    assert radial["freqs"][radial["power_db"].index(max(radial["power_db"]))] > 0.69
    assert Image.open(rows["board.png"]["radial_plot"]).format == "PNG"


def test_score_a_networks_outputs_at_periods_2_4_8_with_its_shift_equivariance(tmp_path):
    """With --checkpoint: the network's outputs scored, and EQ-T of the network on each image, the
    numbers models/artifacts/equivariance.py gives for the same network and photo."""
    import skimage.data

    p = cli("train", "ihc", "--decoder", "deconv", "--steps", "1", "--size", "32", "--batch", "1", "--device", "cpu",
            "--out", tmp_path / "run", "--json")
    assert p.returncode == 0, p.stderr
    checkpoint = json.loads(p.stdout)["checkpoint"]
    photo, small = tmp_path / "coffee.png", tmp_path / "small.png"
    Image.fromarray(skimage.data.coffee()).resize((64, 48)).save(photo)
    rgb_noise(30, 30).save(small)  # too small for the comparison's margins: no EQ-T, the scores still stand
    p = cli("artifacts", "score", photo, small, "--checkpoint", checkpoint, "--json")
    assert p.returncode == 0, p.stderr
    rows = {r["image"].rsplit("/", 1)[1]: r for r in json.loads(p.stdout)["scores"]}
    row = rows["coffee.png"]
    assert {"period2_db", "period4_db", "period8_db"} <= set(row) and all(isinstance(row[f"period{k}_db"], float)
                                                                          for k in (2, 4, 8))
    from models.artifacts.equivariance import shift_equivariance
    from models.checkpoint import load_network
    from models.images import load_tensor

    net, _ = load_network(checkpoint)
    expected = shift_equivariance(net, load_tensor(photo)[None])
    assert [row[f"eq_t{k}_db"] for k in (1, 2, 3, 4)] == pytest.approx([expected[k] for k in (1, 2, 3, 4)], abs=0.01)
    assert [rows["small.png"][f"eq_t{k}_db"] for k in (1, 2, 3, 4)] == [None] * 4
    assert isinstance(rows["small.png"]["period8_db"], float)
    p = cli("artifacts", "score", photo, "--checkpoint", checkpoint)  # the table, for people
    assert p.returncode == 0 and "p8 dB" in p.stdout and "EQ-T" in p.stdout, p.stdout + p.stderr
    eq = "/".join(f"{row[f'eq_t{k}_db']:.1f}" for k in (1, 2, 3, 4))
    assert eq in p.stdout.replace("\n", ""), p.stdout


def test_overlap_json_and_table():
    p = cli("artifacts", "overlap", "deconv", "--json")
    assert json.loads(p.stdout)["tile"][:2] == [[1, 2, 1, 2], [2, 4, 2, 4]]
    p = cli("artifacts", "overlap", "resize-nearest")
    assert p.returncode == 0 and "flat" in p.stdout


def test_init_and_gradient_tables(tmp_path):
    p = cli("artifacts", "init", "--decoders", "deconv resize-nearest", "--seeds", "1", "--size", "32", "--json",
            "--plot", tmp_path)
    assert p.returncode == 0, p.stderr
    rows = {r["decoder"]: r for r in json.loads(p.stdout)}
    assert rows["deconv"]["p2_mean"] > rows["resize-nearest"]["p2_mean"]
    assert (tmp_path / "init.png").is_file()
    p = cli("artifacts", "gradient", "--seeds", "1", "--size", "32", "--no-loss-network", "--json")
    assert p.returncode == 0, p.stderr
    assert {r["probe"] for r in json.loads(p.stdout)} >= {"conv k3 stride 1", "conv k3 stride 2"}


def test_difference_spectrum_of_two_images(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    rgb_noise(40, 40, seed=1).save(a)
    rgb_noise(40, 40, seed=2).save(b)
    p = cli("artifacts", "spectrum", a, b, "--plot", tmp_path, "--json")
    assert p.returncode == 0, p.stderr
    assert Image.open(json.loads(p.stdout)["plot"]).format == "PNG"
    small = tmp_path / "small.png"
    rgb_noise(20, 20).save(small)
    assert_one_line_error(cli("artifacts", "spectrum", a, small), "sizes must match")


def test_bad_arguments_are_one_line(tmp_path):
    assert_one_line_error(cli("artifacts", "overlap", "foo"), "unknown decoder 'foo'")
    assert_one_line_error(cli("artifacts", "init", "--seeds", "0"), "--seeds")
    assert_one_line_error(cli("artifacts", "score", tmp_path / "none.png"), "no such file")
    assert_one_line_error(cli("artifacts", "init", "--decoders", "deconv bogus", "--seeds", "1"), "unknown decoder")


def test_gan_writes_the_images_it_scores(tmp_path):
    p = cli("artifacts", "gan", "--generators", "deconv-last resize-conv", "--steps", "2", "--batch", "2",
            "--samples", "2", "--json", "--plot", tmp_path)
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert [(r["generator"], r["discriminator_stride"]) for r in rows] == [
        ("deconv-last", None), ("resize-conv", None), ("deconv-last", 2), ("resize-conv", 2), ("resize-conv", 1)]
    untrained = rows[0]
    assert untrained["p2_mean"] > rows[1]["p2_mean"] + 10
    # Anyone can score the written PNGs with their own tool: ours gives the table's numbers back.
    import numpy as np

    from models.artifacts import checkerboard_score

    scores = [checkerboard_score(np.asarray(Image.open(f)))[2] for f in untrained["images"]]
    assert abs(sum(scores) / len(scores) - untrained["p2_mean"]) < 0.01
    assert (tmp_path / "gan-untrained.png").is_file() and (tmp_path / "gan-trained.png").is_file()


def test_deepdream_table_and_images(tmp_path):
    p = cli("artifacts", "deepdream", "--size", "32", "--steps", "2", "--layer", "relu2_2", "--json", "--plot", tmp_path)
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert {(r["pooling"], r["jitter"]) for r in rows} == {("max", 0), ("max", 4), ("avg", 0), ("avg", 4)}
    with Image.open(rows[0]["image"]) as img:
        assert img.size == (32, 32)
    assert Image.open(rows[0]["photo"]).size == (32, 32) and (tmp_path / "deepdream.png").is_file()


def test_gan_and_deepdream_bad_options_are_one_line():
    assert_one_line_error(cli("artifacts", "gan", "--generators", "deconv-last bogus"), "unknown generator 'bogus'")
    assert_one_line_error(cli("artifacts", "deepdream", "--layer", "conv9_9"), "unknown layer 'conv9_9'")


def test_lastlayer_table_fits_80_columns(tmp_path):
    import os

    p = run_cli(["artifacts", "lastlayer", "--seeds", "1", "--size", "32"], env={**os.environ, "COLUMNS": "80"})
    assert p.returncode == 0, p.stderr
    assert "resize-nearest,deconv" in p.stdout and "deconv,resize-nearest" in p.stdout  # names never cut
    assert max(len(line) for line in p.stdout.splitlines()) <= 80
