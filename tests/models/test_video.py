"""Stylising a video file: frames, rate and size kept exactly, the audio track kept, progress
reported, and files ffmpeg cannot use turned into clear errors. Videos are made here with the
ffmpeg that imageio-ffmpeg ships (its lavfi test pattern and a sine wave)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch

from models.video import VideoError, probe_video, read_video, stylize_video
from models.transformer_net import TransformerNet

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
FTYP = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"  # an MP4's first box, nothing after it


def make_video(path: Path, *, width: int = 48, height: int = 40, fps: str = "8", frames: int = 8,
               audio: bool = True, pix_fmt: str = "yuv420p") -> Path:
    cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size={width}x{height}:rate={fps}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000:duration=2"]
    cmd += ["-frames:v", str(frames), "-c:v", "libx264", "-pix_fmt", pix_fmt]
    cmd += ["-c:a", "aac", "-shortest"] if audio else []
    subprocess.run([*cmd, str(path)], check=True, capture_output=True)
    return path


def audio_peak_hz(path: Path, rate: int = 16000) -> float:
    """The loudest frequency of the file's audio track, decoded to mono 16-bit."""
    raw = subprocess.run([FFMPEG, "-loglevel", "error", "-i", str(path), "-map", "0:a:0", "-f", "s16le", "-ac", "1",
                          "-ar", str(rate), "-"], check=True, capture_output=True).stdout
    samples = np.frombuffer(raw, dtype=np.int16).astype(np.float64)
    assert samples.size > rate // 4, "the audio track is (nearly) empty"
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[spectrum.argmax()])


@pytest.fixture(scope="module")
def net() -> TransformerNet:
    torch.manual_seed(0)
    return TransformerNet(decoder="deconv").eval()


def test_a_short_video_keeps_its_frames_rate_size_and_audio(net, tmp_path):
    src = make_video(tmp_path / "clip.mp4")
    info = probe_video(src)
    assert (info.frames, info.fps, info.width, info.height, info.has_audio) == (8, 8.0, 48, 40, True)
    seen = []
    result = stylize_video(net, src, tmp_path / "out" / "styled.mp4", progress=lambda d, t: seen.append((d, t)))
    assert (result.frames, result.fps, result.size, result.has_audio) == (8, 8.0, (48, 40), True)
    out = probe_video(result.output)
    assert (out.frames, out.fps, out.width, out.height, out.has_audio) == (8, 8.0, 48, 40, True)
    assert seen[0] == (0, 8) and seen[-1] == (8, 8) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert abs(audio_peak_hz(result.output) - 440) < 5  # the sine wave survived
    frames_in, frames_out = list(read_video(src)), list(read_video(result.output))
    assert np.abs(frames_out[3].astype(int) - frames_in[3]).mean() > 10  # stylised, not copied
    assert result.flicker["input"] is not None and result.flicker["output"] is not None
    assert not list((tmp_path / "out").glob(".styled-*"))  # no temporary file left


def test_odd_sizes_ntsc_rate_no_audio_and_the_options(net, tmp_path):
    """4:2:0 cannot hold an odd side: the size is kept exactly (4:4:4), never scaled."""
    src = make_video(tmp_path / "odd.mkv", width=45, height=37, fps="30000/1001", frames=5, audio=False,
                     pix_fmt="yuv444p")
    result = stylize_video(net, src, tmp_path / "odd.mov", strength=0.0, colors="luminance")
    out = probe_video(result.output)
    assert (out.frames, out.width, out.height, out.has_audio) == (5, 45, 37, False)
    assert abs(out.fps - 29.97) < 0.01
    # Strength 0 is the input itself (H.264 at the quality used moves pixels by a level or two).
    diff = np.abs(np.stack(list(read_video(result.output))).astype(int) - np.stack(list(read_video(src))))
    assert diff.mean() < 2


@pytest.mark.parametrize("make, message", [
    (lambda d: (d / "notes.mp4").write_text("not a video") and d / "notes.mp4", r"not a video file we read \(text\)"),
    (lambda d: (d / "box.mp4").write_bytes(FTYP + b"no boxes after it") and d / "box.mp4", "not a video ffmpeg can read"),
    (lambda d: d / "missing.mp4", "no such file"),
    (lambda d: _audio_only(d / "sound.m4a"), "has no video stream"),
    (lambda d: _truncated(d / "cut.mp4"), "cut.mp4: "),
])
def test_files_ffmpeg_cannot_use_are_clear_errors(net, tmp_path, make, message):
    src = make(tmp_path)
    with pytest.raises(VideoError, match=message):
        stylize_video(net, src, tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists()
    assert not list(tmp_path.glob(".out-*"))


def test_a_frame_limit_stops_the_count_one_past_it(tmp_path):
    """The stylise server counts a video only as far as its limit allows (workers/stylize_server.py)."""
    clip = make_video(tmp_path / "c.mp4", width=16, height=16, frames=20, audio=False)
    sizes = []
    assert probe_video(clip, frame_limit=lambda w, h: sizes.append((w, h)) or 5).frames == 6
    assert sizes == [(16, 16)]
    assert probe_video(clip, frame_limit=lambda w, h: 100).frames == probe_video(clip).frames == 20


def test_the_destination_must_be_a_video_container(net, tmp_path):
    with pytest.raises(VideoError, match=r"write a video as \.mp4, \.mov, \.mkv"):
        stylize_video(net, tmp_path / "whatever.mp4", tmp_path / "out.gif")


def _audio_only(path: Path) -> Path:
    subprocess.run([FFMPEG, "-loglevel", "error", "-y", "-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(path)],
                   check=True, capture_output=True)
    return path


def _truncated(path: Path) -> Path:
    full = make_video(path.with_name("full.mp4"), frames=16)
    data = full.read_bytes()
    path.write_bytes(data[: len(data) // 3])  # the index (moov, written last... or first with faststart) is cut
    return path
