"""The CLI as a user runs it: a process of its own, its exit code, its stdout and stderr
(tests/cli_process.py: forked with torch already imported; the tests of the entry point itself
start `python -m service.cli`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from models.config import DEFAULTS
from tests.cli_process import run_cli
from tests.conftest import rgb_noise

TINY = ["--size", "32", "--batch", "1", "--device", "cpu"]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return run_cli(args, cwd=cwd)


def assert_one_line_error(p: subprocess.CompletedProcess, *fragments: str) -> None:
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("error: ")
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    p = cli("train", "ihc", "--decoder", "resize-nearest,deconv", "--steps", "2", *TINY, "--out", out, "--json")
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["step"] == 2 and summary["decoder"] == "resize-nearest,deconv"
    with Image.open(summary["preview"]) as preview:  # at the suite's CHECKERLESS_PREVIEW_SIZE (tests/conftest.py)
        assert min(preview.size) == int(os.environ["CHECKERLESS_PREVIEW_SIZE"])
    return Path(summary["checkpoint"])


def test_help_for_every_command():
    from typer.testing import CliRunner

    from service.cli.main import app

    p = subprocess.run([sys.executable, "-m", "service.cli", "--help"], capture_output=True, text=True,
                       timeout=300)  # the command as installed
    assert p.returncode == 0 and "Usage" in p.stdout
    # Every subcommand's help in this process (typer's own runner): one Python start-up, not 16.
    runner = CliRunner()
    for cmd in (["train"], ["stylize"], ["stylize-video"], ["decoders"], ["downsamples"], ["demo"], ["serve"], ["worker"], ["jobs"], ["artifacts"], ["bench"],
                ["artifacts", "score"], ["jobs", "submit"], ["jobs", "stylize-video"], ["content-sets"], ["content-sets", "upload"]):
        r = runner.invoke(app, [*cmd, "--help"])
        assert r.exit_code == 0 and "Usage" in r.output, (cmd, r.output)


def test_decoders_lists_every_name_with_its_overlap():
    p = cli("decoders", "--json")
    rows = json.loads(p.stdout)
    assert {r["name"]: r["overlap"] for r in rows} == {
        "deconv": "uneven", "deconv4": "even", "resize-nearest": "none", "resize-bilinear": "none", "subpixel": "even",
        "deconv-zoh": "none", "resize-lowpass": "none"}


def test_train_then_stylize_files_and_a_folder(trained, tmp_path, photo_dir):
    odd = tmp_path / "odd.png"
    rgb_noise(45, 67).save(odd)
    p = cli("stylize", trained, odd, photo_dir, "--out", tmp_path / "out", "--json")
    assert p.returncode == 0, p.stderr
    outputs = json.loads(p.stdout)["outputs"]
    assert len(outputs) == 4
    for o in outputs:
        with Image.open(o["output"]) as img, Image.open(o["input"]) as src:
            assert img.format == "PNG" and img.size == src.size


def test_stylize_in_tiles_matches_the_whole_image(trained, tmp_path):
    """--tile forces tiles; a memory budget too small for the image tiles it by itself."""
    import numpy as np

    photo = tmp_path / "photo.png"
    rgb_noise(150, 130).save(photo)
    runs = {name: cli("stylize", trained, photo, "--out", tmp_path / name, *extra, "--json")
            for name, extra in (("whole", []), ("tiled", ["--tile", "64"]), ("budget", ["--memory-budget", "0.01"]))}
    pixels = {}
    for name, p in runs.items():
        assert p.returncode == 0, p.stderr
        with Image.open(json.loads(p.stdout)["outputs"][0]["output"]) as img:
            assert img.size == Image.open(photo).size
            pixels[name] = np.asarray(img, dtype=np.int16)
    assert np.abs(pixels["tiled"] - pixels["whole"]).max() <= 1
    assert np.abs(pixels["budget"] - pixels["whole"]).max() <= 1
    assert_one_line_error(cli("stylize", trained, photo, "--tile", "30"), "multiple of 4")


def test_train_progress_and_summary_for_people(tmp_path):
    p = cli("train", "ihc", "--steps", "1", *TINY, "--out", tmp_path)
    assert p.returncode == 0, p.stderr
    assert "finished step 1/1" in p.stdout and "checkpoint:" in p.stdout
    assert "probe, step 0 → 1" in p.stdout and "checkerboard: period 2" in p.stdout
    assert "style distance" in p.stdout and "content distance" in p.stdout
    assert "loss" in p.stderr  # the progress bar shows the losses


def test_resume_with_more_steps(trained, tmp_path):
    p = cli("train", "--resume", trained, "--steps", "3", "--out", tmp_path, "--json", "--device", "cpu")
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert s["step"] == 3 and s["decoder"] == "resize-nearest,deconv"
    # The probe's series from the step it resumed at: artifact scores beside style and content distance.
    assert [r["step"] for r in s["probe"]] == [2, 3]
    assert all(r["style_distance"] > 0 and r["content_distance"] > 0 and "artifact_p2" in r for r in s["probe"])


@pytest.mark.parametrize("args, fragments", [
    (["train", "missing.png"], ["missing.png", "no such file"]),
    (["train", "ihc", "--decoder", "transposed"], ["unknown decoder 'transposed'", "resize-nearest"]),
    (["train", "ihc", "--size", "0"], ["size must be between"]),
    (["train", "ihc", "--steps", "-5"], ["steps must be between"]),
    (["train", "ihc", "--steps", "many"], ["--steps"]),
    (["train", "ihc", "--content", "no-such-folder"], ["no such folder"]),
    (["train"], ["STYLE"]),
    (["train", "--resume", "nothing.ckpt"], ["no such checkpoint"]),
    (["stylize", "nothing.ckpt", "x.png"], ["no such checkpoint"]),
    (["frobnicate"], ["No such command"]),
    (["bench", "--job-path", "--job-steps", "2"], ["--job-steps"]),  # too short to time past its warm-up
])
def test_bad_input_is_one_line_and_a_non_zero_exit(args, fragments, tmp_path):
    assert_one_line_error(cli(*args, cwd=tmp_path), *fragments)


def test_a_text_file_named_png(tmp_path, trained):
    fake = tmp_path / "fake.png"
    fake.write_text("not really a picture")
    assert_one_line_error(cli("train", fake, *TINY, cwd=tmp_path), "fake.png", "not an image")
    assert_one_line_error(cli("stylize", trained, fake, "--out", tmp_path / "o"), "not an image")
    assert_one_line_error(cli("stylize", fake, fake), "not a checkpoint")


def test_demo_compares_two_decoders_trained_alike(tmp_path):
    p = cli("demo", "--offline", "--steps", "2", "--size", "32", "--batch", "1", "--device", "cpu", "--photo", "coffee",
            "--out", tmp_path, "--json")
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout)
    assert [v["decoder"] for v in result["variants"]] == ["deconv", DEFAULTS.decoder]
    for v in result["variants"]:
        with Image.open(v["image"]) as img:
            assert img.size == (600, 400)  # skimage's coffee, stylised at full size
    # Two steps barely change the init: deconv's checkerboard is there, the default has none.
    deconv, nearest = result["variants"]
    assert deconv["period2_db"] > nearest["period2_db"] + 10
    with Image.open(result["figure"]) as fig:
        assert fig.size[0] > 600


def test_a_bad_preview_size_is_one_line_before_any_training(tmp_path):
    p = run_cli(["train", "ihc", "--steps", "1", *TINY, "--out", tmp_path],
                env={**os.environ, "CHECKERLESS_PREVIEW_SIZE": "huge"})
    assert_one_line_error(p, "CHECKERLESS_PREVIEW_SIZE", "from 32 to 1024", "'huge'")
    assert not list(tmp_path.iterdir())  # nothing trained, nothing written


def test_demo_refuses_a_single_decoder(tmp_path):
    assert_one_line_error(cli("demo", "--decoders", "deconv", "--out", tmp_path), "at least two")


def test_ctrl_c_stops_cleanly_with_a_checkpoint_and_resume_goes_on(tmp_path, photo_dir):
    (photo_dir / "notes.txt").write_text("not an image")
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "train", "ihc", "--content", str(photo_dir), "--steps", "500",
         *TINY, "--checkpoint-every", "1", "--out", str(tmp_path), "--json",
         "--compile", "off"],  # a long run would compile first: minutes of this test on a small CPU
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    import signal
    import time

    deadline = time.monotonic() + 120
    while not (tmp_path / "last.ckpt").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    summary = json.loads(stdout)
    assert summary["stopped"] and 1 <= summary["step"] < 500
    assert summary["skipped"] == [{"file": "notes.txt", "reason": summary["skipped"][0]["reason"]}]
    p = cli("train", "--resume", summary["checkpoint"], "--steps", str(summary["step"] + 1), "--out", tmp_path / "more",
            "--json", "--device", "cpu")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["step"] == summary["step"] + 1


def test_bench_reports_ratios_against_the_baseline_measured_in_the_same_run():
    p = cli("bench", "--decoders", "resize-nearest deconv", "--size", "32", "--batch", "1", "--steps", "1",
            "--warmup", "0", "--device", "cpu", "--json")
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout)
    base, other = result["rows"]
    assert base["decoder"] == "resize-nearest" and base["infer_ratio"] == 1.0 and base["step_ratio"] == 1.0
    assert other["decoder"] == "deconv" and other["step_ms"] > 0
    assert other["step_ratio"] == pytest.approx(other["step_ms"] / base["step_ms"])
    assert base["peak_mib"] is None and result["device"].startswith("CPU")
    assert_one_line_error(cli("bench", "--decoders", "deconv nope"), "unknown decoder 'nope'")


def _render(table) -> list[str]:
    from rich.console import Console

    from service.cli.demo_table import WIDTH

    console = Console(width=WIDTH, record=True, file=open("/dev/null", "w"))
    console.print(table)
    return console.export_text().splitlines()


def test_the_demos_score_tables_read_whole_in_80_columns():
    """No cut name ("resize-nea…"), no wrapped header, nothing past column 80."""
    from service.cli.demo_table import offline_table, service_table
    from service.cli.demo_service import demo_rows

    from models.vocabulary import DECODER_INFO

    labels = [*DECODER_INFO, "resize-nearest,deconv"]
    exp = {"variants": [{"decoder": label.split(" / ")[0], "label": label, "state": "succeeded",
                         "panel": [{"name": "chelsea", "period2_db": -23.46, "period4_db": -31.2}],
                         "scores": {"init": {"artifact_p2": 12.3}, "final": {"artifact_p2": -20.04}},
                         "seconds_per_step": 0.53, "losses": {"loss": 123456.7}, "error": None} for label in labels]}
    lines = _render(service_table(demo_rows(exp, "chelsea"), "chelsea"))
    assert max(map(len, lines)) <= 80 and not any("…" in line for line in lines), "\n".join(lines)
    header = next(line for line in lines if "variant" in line)
    assert header.split() == ["variant", "p2", "dB", "p4", "dB", "probe", "p2", "dB", "s/step", "loss"]
    for label in labels:  # each on one line, whole, with its numbers
        assert any(line.strip().startswith(label + " ") and "-23.5" in line and "+12.3 → -20.0" in line
                   for line in lines), label
    offline = [{"decoder": label.split(" / ")[0], "period2_db": -23.46, "period4_db": -31.2, "final_loss": 123456.7,
                "seconds": 61.0} for label in labels]
    lines = _render(offline_table(offline, "chelsea"))
    assert max(map(len, lines)) <= 80 and not any("…" in line for line in lines), "\n".join(lines)
    assert next(line for line in lines if "decoder" in line).split() == ["decoder", "p2", "dB", "p4", "dB", "final",
                                                                          "loss", "train", "s"]


def test_the_job_path_bench_reads_its_ratios_and_shares_from_the_jobs_timing():
    """`bench --job-path`'s arithmetic on a job's report (the command itself runs in the GPU
    script's dry run, tests/test_gpu_bench.py): images/s against the bare step, each phase's
    share of the job's loop."""
    from service.cli.job_bench import rows

    timing = {"steps": 10, "loop_s": 20.0, "step_s": 16.0, "probe_s": 2.0, "checkpoint_s": 1.0, "other_s": 1.0}
    table = {r["measure"]: r for r in rows({"batch": 4, "bare_step_s": 1.6, "timing": timing})}
    assert table["bare step"]["images_s"] == pytest.approx(2.5) and table["bare step"]["of_bare"] == 1.0
    assert table["job"]["s_per_step"] == pytest.approx(2.0) and table["job"]["images_s"] == pytest.approx(2.0)
    assert table["job"]["of_bare"] == pytest.approx(0.8)
    shares = {name: table[f"job: {name}"]["share"] for name in ("step", "probe", "checkpoint", "other")}
    assert shares == pytest.approx({"step": 0.8, "probe": 0.1, "checkpoint": 0.05, "other": 0.05})


def test_train_takes_several_styles_and_the_encoder_and_loss_settings(tmp_path):
    from models.checkpoint import read_checkpoint

    p = cli("train", "ihc", "gravel", "--downsample", "blur-stride,stride-conv", "--loss-pooling", "avg",
            "--stability-weight", "0.5", "--plain-relu", "--steps", "1", *TINY, "--out", tmp_path, "--json")
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["styles"] == ["ihc", "gravel"] and summary["step"] == 1
    assert (summary["downsample"], summary["loss_pooling"]) == ("blur-stride,stride-conv", "avg")
    assert read_checkpoint(tmp_path / "last.ckpt")[0].config.filtered_relu is False  # the default is filtered
    assert_one_line_error(cli("train", "ihc", "--loss-pooling", "median", *TINY), "unknown loss pooling 'median'")
    assert_one_line_error(cli("train", "ihc", "--downsample", "maxpool", *TINY), "unknown downsample 'maxpool'",
                          "stride-conv, blur-stride, lowpass-stride, resize-down")
    assert_one_line_error(cli("train", *["ihc"] * 33, *TINY), "at most 32 styles")
    assert_one_line_error(cli("train", "ihc", "--resume", tmp_path / "last.ckpt"), "give no STYLE")
    p = cli("downsamples", "--json")
    assert [r["name"] for r in json.loads(p.stdout)] == ["stride-conv", "blur-stride", "lowpass-stride", "resize-down"]


def test_each_call_is_a_process_of_its_own_whose_cpu_is_counted(tmp_path):
    """tests/cli_process.py: the call's environment and folder are its own, not this process's,
    and its CPU reaches the suite's timeline (tests/conftest.py)."""
    from tests import cli_process

    before = cli_process.forked_cpu_s
    p = run_cli(["decoders", "--json"], cwd=tmp_path, env={**os.environ, "COLUMNS": "33"})
    assert p.returncode == 0 and json.loads(p.stdout) and p.stderr == ""
    assert cli_process.forked_cpu_s > before
    assert os.getcwd() != str(tmp_path) and os.environ.get("COLUMNS") != "33"
