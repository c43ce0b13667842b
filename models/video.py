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
from models.images import MAX_PIXELS
from models.stylize import finish, forward, select, stylize_precision
from models.stylize_options import DEFAULT_COLORS, DEFAULT_STRENGTH, VIDEO_SUFFIXES, check_colors, check_strength
from models.tiling import DEFAULT_MEMORY_BUDGET, choose_tile, stylize_tiled
from models.transformer_net import TransformerNet

BATCH = 4  # frames per forward pass
QUALITY = 8  # imageio-ffmpeg's 1..10 scale; 8 is libx264's CRF 10: textures and artifacts survive


class VideoError(ValueError):
    """A video we cannot read or write; the message says what is wrong."""


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
        p = subprocess.run([_ffmpeg(), "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True,
                           text=True, errors="replace", timeout=60)
    except subprocess.TimeoutExpired:
        raise VideoError(f"{path.name}: ffmpeg could not read the file's header within 60 s") from None
    text = p.stderr
    if "Input #0" not in text:
        raise VideoError(f"{path.name}: not a video ffmpeg can read ({_reason(text)})")
    return text


def probe_video(path: str | Path) -> VideoInfo:
    """Frame rate, size, number of frames and whether there is audio; VideoError if the file is
    not a readable video. Counting the frames decodes the video once (fast: no conversion)."""
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
    gen = imageio_ffmpeg.read_frames(str(p))
    try:
        meta = next(gen)
    except Exception as e:  # IOError / RuntimeError from the reader, with ffmpeg's log
        raise VideoError(f"{p.name}: cannot read its video ({_reason(str(e))})") from None
    finally:
        gen.close()
    width, height = meta["size"]
    if width * height > MAX_PIXELS:
        raise VideoError(f"{p.name}: frames are {width}x{height} = {width * height} pixels; the limit is {MAX_PIXELS}")
    try:
        frames, _ = imageio_ffmpeg.count_frames_and_secs(str(p))
    except RuntimeError as e:
        raise VideoError(f"{p.name}: cannot decode its video ({_reason(str(e))})") from None
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
    import imageio_ffmpeg

    p = Path(path)
    info = info or probe_video(p)
    gen = imageio_ffmpeg.read_frames(str(p), output_params=["-map", "0:v:0", "-fps_mode", "passthrough"])
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


def stylize_video(net: TransformerNet, src: str | Path, dst: str | Path, *,
                  style: int | Sequence[float] | None = None, strength: float = DEFAULT_STRENGTH,
                  colors: str = DEFAULT_COLORS, tile: int | None = None, memory_budget: int = DEFAULT_MEMORY_BUDGET,
                  batch: int = BATCH, progress: Callable[[int, int], None] | None = None,
                  precision: str = "32") -> VideoResult:
    """Stylise every frame of `src` into `dst` (.mp4, .mov or .mkv): same frame count, rate and
    size, the audio kept. `progress(done, total)` is called after each batch of frames.
    `precision`: auto, 32 or bf16 (models/stylize.py stylize_precision); fp32 unless asked."""
    started = time.perf_counter()
    strength, colors = check_strength(strength), check_colors(colors)
    precision = stylize_precision(precision, next(net.parameters()).device)
    src, dst = Path(src), Path(dst)
    if dst.suffix.lower() not in VIDEO_SUFFIXES:
        raise VideoError(f"{dst.name}: write a video as {', '.join(VIDEO_SUFFIXES)}")
    select(net, style)
    info = probe_video(src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dst.stem}-", suffix=dst.suffix, dir=dst.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    meter_in, meter_out = FlickerMeter(), FlickerMeter()
    done = 0
    if progress:
        progress(0, info.frames)
    even = info.width % 2 == 0 and info.height % 2 == 0
    import imageio_ffmpeg

    writer = imageio_ffmpeg.write_frames(
        str(tmp), (info.width, info.height), fps=exact_rate(info.fps), codec="libx264", quality=QUALITY,
        pix_fmt_out="yuv420p" if even else "yuv444p", macro_block_size=1, ffmpeg_log_level="error",
        audio_path=str(src) if info.has_audio else None, audio_codec="aac" if info.has_audio else None,
        output_params=["-movflags", "+faststart"] if dst.suffix.lower() in (".mp4", ".mov") else None)
    ok = False
    try:
        writer.send(None)  # start ffmpeg
        pending: list[np.ndarray] = []

        def flush() -> None:
            nonlocal done
            outs = _stylize_batch(net, pending, strength=strength, colors=colors, tile=tile, memory_budget=memory_budget,
                                  precision=precision)
            for a, b in zip(pending, outs, strict=True):
                meter_in.update(a, a)
                meter_out.update(a, b)
                writer.send(np.ascontiguousarray(b))
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
        try:
            writer.close()
        except (OSError, RuntimeError) as e:
            raise VideoError(f"{dst.name}: ffmpeg could not write the video ({_reason(str(e))})") from None
        ok = True
    except OSError as e:  # the encoder stopped (a broken pipe, a full disk)
        raise VideoError(f"{dst.name}: ffmpeg could not write the video ({_reason(str(e))})") from None
    finally:
        if not ok:
            try:
                writer.close()
            except (OSError, RuntimeError):
                pass  # the error being raised says more
            tmp.unlink(missing_ok=True)
    tmp.replace(dst)
    clean = lambda v: None if math.isnan(v) else round(v, 4)  # noqa: E731
    return VideoResult(output=dst, frames=done, fps=info.fps, width=info.width, height=info.height,
                       has_audio=info.has_audio, flicker={"input": clean(meter_in.value), "output": clean(meter_out.value)},
                       seconds=time.perf_counter() - started, precision=precision)
