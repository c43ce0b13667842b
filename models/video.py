"""Stylising a video file frame by frame, with the ffmpeg that imageio-ffmpeg's wheel ships.

- Frames are decoded as 8-bit RGB (every frame the file holds, none dropped or repeated:
  ffmpeg's passthrough frame timing), stylised in small batches with the options of
  models/stylize.py (style or mix, strength, colours), and encoded with H.264 at the source's
  frame rate and exact size: 4:2:0 chroma when both sides are even, else 4:4:4 (4:2:0 cannot
  hold an odd side; nothing is scaled or padded).
- The first audio track is kept (re-encoded as AAC, which every H.264 container takes).
- The forward runs in fp32 or under bf16 autocast (`precision`, as models/stylize.py), the
  frames handed to the encoder rounded from float32 outputs either way.
- The flicker of the input and of the output (models/flicker.py) is measured on the frames as
  decoded and as handed to the encoder (8-bit), so it is the network's, not the codec's.
- Every input is opened one way, models/video_input.py's `open_input`: its container sniffed
  from its first bytes against a list of single-file containers (no playlists, manifests,
  concat lists or other files named inside), then ffmpeg told to use that demuxer alone, the
  `file` protocol alone and no external references. That holds for the probe, the frame count,
  the frames and the audio track read while encoding.
- Anything ffmpeg cannot read (not a video, no video stream, a codec it has no decoder for, a
  truncated file) is a VideoError saying so; the output is written to a temporary file beside
  the destination and renamed only when complete.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from models.flicker import FlickerMeter
from models.images import pixel_limit
from models.stylize import finish, forward, select, stylize_precision
from models.stylize_options import DEFAULT_COLORS, DEFAULT_STRENGTH, VIDEO_SUFFIXES, check_colors, check_strength
from models.tiling import DEFAULT_MEMORY_BUDGET, choose_tile, stylize_tiled
from models.transformer_net import TransformerNet
from models.video_input import VideoError, open_input  # VideoError lives there (torch-free), used from here too

BATCH = 4  # frames per forward pass
CRF = 10  # libx264's constant rate factor (imageio-ffmpeg's quality 8): textures and artifacts survive


@dataclass(frozen=True)
class VideoInfo:
    fps: float
    width: int
    height: int
    frames: int
    has_audio: bool
    codec: str = ""


@dataclass(frozen=True)
class VideoResult:
    output: Path
    frames: int
    fps: float
    width: int
    height: int
    has_audio: bool
    flicker: dict  # {"input": levels, "output": levels} (None where no still pixels: see models/flicker.py)
    seconds: float
    precision: str = "32"  # what the forward ran in: "32" or "bf16"

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def to_dict(self) -> dict:
        return {"output": str(self.output), "frames": self.frames, "fps": self.fps, "width": self.width,
                "height": self.height, "has_audio": self.has_audio, "flicker": self.flicker,
                "seconds": round(self.seconds, 2), "precision": self.precision}


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _reason(stderr: str) -> str:
    """The line of ffmpeg's log that says what went wrong."""
    lines = [re.sub(r"^(\[[^\]]*\]\s*)+", "", line.strip()) for line in stderr.splitlines() if line.strip()]
    for key in ("Invalid data found", "Decoder", "decoder", "not supported", "Unsupported", "unknown codec",
                "moov atom not found", "could not find codec", "Error", "error"):
        for line in lines:
            if key in line:
                return line
    return lines[-1] if lines else "no reason given"


_STREAM = re.compile(r"Stream #\d+:\d+.*?: (Video|Audio): (\S+?)[ ,]")


def _header(path: Path) -> str:
    """ffmpeg's description of the file (its streams), or a VideoError."""
    try:
        p = subprocess.run([_ffmpeg(), "-hide_banner", "-nostdin", *open_input(path)], capture_output=True,
                           text=True, errors="replace", timeout=60)
    except subprocess.TimeoutExpired:
        raise VideoError(f"{path.name}: ffmpeg could not read the file's header within 60 s") from None
    text = p.stderr
    if "Input #0" not in text:
        raise VideoError(f"{path.name}: not a video ffmpeg can read ({_reason(text)})")
    return text


def _read_frames(path: Path, output_params: list[str] | None = None) -> Iterator:
    """imageio-ffmpeg's frame reader (its first item the stream's metadata), on the locked-down input."""
    import imageio_ffmpeg

    *options, _, url = open_input(path)  # [..., "-i", url]: imageio puts its own "-i" before the url
    return imageio_ffmpeg.read_frames(url, input_params=options, output_params=output_params)


def _count_frames(path: Path, at_most: int | None = None) -> int:
    """The number of video frames, decoded once without conversion (imageio-ffmpeg's
    count_frames_and_secs, which cannot take input options: the same command and parse).
    `at_most`: decoding stops there, so a count of `at_most` means "at least that many"."""
    stop = ["-frames:v", str(at_most)] if at_most is not None else []
    p = subprocess.run([_ffmpeg(), "-hide_banner", "-nostdin", *open_input(path), "-map", "0:v:0", "-vf", "null",
                        *stop, "-f", "null", "-"], capture_output=True)
    log = p.stderr.decode(errors="replace")
    if p.returncode:
        raise VideoError(f"{path.name}: cannot decode its video ({_reason(log)})")
    for line in reversed(p.stderr.splitlines()):  # \r-separated progress lines too
        m = re.search(rb"frame=\s*(\d+)", line)
        if m:
            return int(m.group(1))
    raise VideoError(f"{path.name}: cannot decode its video ({_reason(log)})")


def probe_video(path: str | Path, frame_limit: Callable[[int, int], int] | None = None) -> VideoInfo:
    """Frame rate, size, number of frames and whether there is audio; VideoError if the file is
    not a readable video. Counting the frames decodes the video once (fast: no conversion).
    `frame_limit(width, height)`: the most frames the caller takes at that size; counting stops
    one past it (`frames` is then limit + 1), so a video over it costs no more to count."""
    import imageio_ffmpeg

    p = Path(path)
    if not p.is_file():
        raise VideoError(f"{p}: no such file")
    text = _header(p)
    streams = _STREAM.findall(text)
    video = [codec for kind, codec in streams if kind == "Video"]
    if not video:
        raise VideoError(f"{p.name}: has no video stream")
    if video[0] in ("none", "unknown"):
        raise VideoError(f"{p.name}: its video codec is not one ffmpeg {imageio_ffmpeg.get_ffmpeg_version().split('-')[0]} decodes")
    gen = _read_frames(p)
    try:
        meta = next(gen)
    except Exception as e:  # IOError / RuntimeError from the reader, with ffmpeg's log
        raise VideoError(f"{p.name}: cannot read its video ({_reason(str(e))})") from None
    finally:
        gen.close()
    width, height = meta["size"]
    if width * height > pixel_limit():
        raise VideoError(f"{p.name}: frames are {width}x{height} = {width * height} pixels; the limit is {pixel_limit()}")
    frames = _count_frames(p, None if frame_limit is None else max(0, frame_limit(width, height)) + 1)
    if not frames:
        raise VideoError(f"{p.name}: has no frames ffmpeg can decode ({_reason(text)})")
    fps = float(meta.get("fps") or 0)
    if not fps > 0:
        raise VideoError(f"{p.name}: has no frame rate")
    return VideoInfo(fps=fps, width=width, height=height, frames=frames,
                     has_audio=any(kind == "Audio" for kind, _ in streams), codec=str(meta.get("codec", video[0])))


def exact_rate(fps: float) -> Fraction:
    """ffmpeg prints rates rounded (29.97); NTSC rates are n*1000/1001 exactly."""
    ntsc = round(fps * 1.001)
    if ntsc and abs(fps - ntsc * 1000 / 1001) < 0.005 and abs(fps - round(fps)) > 0.005:
        return Fraction(ntsc * 1000, 1001)
    return Fraction(fps).limit_denominator(1001)


def read_video(path: str | Path, info: VideoInfo | None = None) -> Iterator[np.ndarray]:
    """The frames, (H, W, 3) uint8 RGB, every one the file holds."""
    p = Path(path)
    info = info or probe_video(p)
    gen = _read_frames(p, output_params=["-map", "0:v:0", "-fps_mode", "passthrough"])
    try:
        next(gen)
        for raw in gen:
            yield np.frombuffer(raw, dtype=np.uint8).reshape(info.height, info.width, 3)
    except (OSError, RuntimeError) as e:
        raise VideoError(f"{p.name}: cannot decode its video ({_reason(str(e))})") from None
    finally:
        gen.close()


def _stylize_batch(net: TransformerNet, frames: list[np.ndarray], *, strength: float, colors: str,
                   tile: int | None, memory_budget: int, precision: str = "32") -> list[np.ndarray]:
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()
    h, w = x.shape[2:]
    device = next(net.parameters()).device
    whole = choose_tile(h, w, tile=tile, memory_budget=memory_budget // len(frames)) is None
    if whole:  # the batch in one pass (instance norm is per frame: the same as one at a time)
        y = forward(net, x.to(device), precision).cpu()
    else:  # frame by frame, tiled where one frame alone is too large
        size = choose_tile(h, w, tile=tile, memory_budget=memory_budget)
        y = torch.cat([(stylize_tiled(net, f[None].to(device), size, precision=precision) if size
                        else forward(net, f[None].to(device), precision)).cpu() for f in x])
    y = finish(y, x, strength=strength, colors=colors)
    y8 = y.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return list(y8)


class _Encoder:
    """ffmpeg writing H.264 from raw RGB frames sent to its stdin, with the first audio track of
    the source (opened through open_input like every input). Not imageio-ffmpeg's write_frames:
    it puts a bare `-i` before the audio file, out of reach of any input option."""

    def __init__(self, path: Path, info: VideoInfo, *, name: str, audio_from: Path | None, faststart: bool) -> None:
        self.name = name  # the destination's, not the temporary file's
        even = info.width % 2 == 0 and info.height % 2 == 0
        cmd = [_ffmpeg(), "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{info.width}x{info.height}",
               "-r", str(exact_rate(info.fps)), "-protocol_whitelist", "pipe", "-i", "pipe:0"]
        if audio_from is not None:
            cmd += [*open_input(audio_from), "-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac"]
        else:
            cmd += ["-map", "0:v:0"]
        # 4:2:0 cannot hold an odd side: 4:4:4 there, never a scale or a pad.
        cmd += ["-c:v", "libx264", "-crf", str(CRF), "-pix_fmt", "yuv420p" if even else "yuv444p"]
        cmd += ["-movflags", "+faststart"] if faststart else []
        self.log = tempfile.TemporaryFile()  # a file, not a pipe: a chatty ffmpeg can never block on it
        self.process = subprocess.Popen([*cmd, "file:" + str(path.resolve())], stdin=subprocess.PIPE,
                                        stdout=subprocess.DEVNULL, stderr=self.log)

    def _failed(self) -> VideoError:
        self.process.wait()
        self.log.seek(0)
        reason = _reason(self.log.read().decode(errors="replace"))
        return VideoError(f"{self.name}: ffmpeg could not write the video ({reason})")

    def send(self, frame: np.ndarray) -> None:
        try:
            self.process.stdin.write(np.ascontiguousarray(frame).tobytes())
        except OSError:  # the encoder stopped (a bad audio track, a full disk): its log says why
            raise self._failed() from None

    def close(self) -> None:
        try:
            self.process.stdin.close()
        except OSError:
            pass  # a broken pipe: the exit status below says the same
        if self.process.wait() != 0:
            raise self._failed()
        self.log.close()

    def abort(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for f in (self.process.stdin, self.log):
            try:
                f.close()
            except OSError:
                pass


def stylize_video(net: TransformerNet, src: str | Path, dst: str | Path, *,
                  style: int | Sequence[float] | None = None, strength: float = DEFAULT_STRENGTH,
                  colors: str = DEFAULT_COLORS, tile: int | None = None, memory_budget: int = DEFAULT_MEMORY_BUDGET,
                  batch: int = BATCH, progress: Callable[[int, int], None] | None = None,
                  precision: str = "32", info: VideoInfo | None = None) -> VideoResult:
    """Stylise every frame of `src` into `dst` (.mp4, .mov or .mkv): same frame count, rate and
    size, the audio kept. `progress(done, total)` is called after each batch of frames.
    `precision`: auto, 32 or bf16 (models/stylize.py stylize_precision); fp32 unless asked.
    `info`: `probe_video(src)` where the caller has it already (its frames counted once)."""
    started = time.perf_counter()
    strength, colors = check_strength(strength), check_colors(colors)
    precision = stylize_precision(precision, next(net.parameters()).device, net)
    src, dst = Path(src), Path(dst)
    if dst.suffix.lower() not in VIDEO_SUFFIXES:
        raise VideoError(f"{dst.name}: write a video as {', '.join(VIDEO_SUFFIXES)}")
    select(net, style)
    info = info or probe_video(src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dst.stem}-", suffix=dst.suffix, dir=dst.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    meter_in, meter_out = FlickerMeter(), FlickerMeter()
    done = 0
    if progress:
        progress(0, info.frames)
    writer, ok = None, False
    try:
        writer = _Encoder(tmp, info, name=dst.name, audio_from=src if info.has_audio else None,
                          faststart=dst.suffix.lower() in (".mp4", ".mov"))
        pending: list[np.ndarray] = []

        def flush() -> None:
            nonlocal done
            outs = _stylize_batch(net, pending, strength=strength, colors=colors, tile=tile, memory_budget=memory_budget,
                                  precision=precision)
            for a, b in zip(pending, outs, strict=True):
                meter_in.update(a, a)
                meter_out.update(a, b)
                writer.send(b)
            done += len(pending)
            pending.clear()
            if progress:
                progress(done, max(done, info.frames))

        for frame in read_video(src, info):
            pending.append(frame)
            if len(pending) >= batch:
                flush()
        if pending:
            flush()
        if done == 0:
            raise VideoError(f"{src.name}: no frame could be decoded")
        writer.close()
        ok = True
    finally:
        if not ok:
            if writer is not None:
                writer.abort()
            tmp.unlink(missing_ok=True)
    tmp.replace(dst)
    clean = lambda v: None if math.isnan(v) else round(v, 4)  # noqa: E731
    return VideoResult(output=dst, frames=done, fps=info.fps, width=info.width, height=info.height,
                       has_audio=info.has_audio, flicker={"input": clean(meter_in.value), "output": clean(meter_out.value)},
                       seconds=time.perf_counter() - started, precision=precision)
