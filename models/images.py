"""Reading and writing images: every mode Pillow reads becomes 8-bit RGB, or a clear error.

The rules: an allow-list of formats, the pixel count checked from the header before
decoding (Pillow's own bomb check is not enough for our limit), and every decoder failure
turned into `ImageError` with the reason.

Memory: an image at the pixel limit is big (40 MP is 160 MB as Pillow's RGB, which keeps 4
bytes a pixel), so conversions go a band of rows at a time, in integer arithmetic (float64 only
for a band of a float image), never through a float64 copy of the whole image. `to_rgb` holds
the decoded image and its RGB result; `rgb_png`, the API's check, holds only the decoded image
(the RGB rows are compressed into the PNG as they are made). tests/models/test_images.py
measures both at the pixel limit.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

if TYPE_CHECKING:
    import torch

FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")
# Our own limit on an image's pixels, checked before decoding (a 40 MP photo is fine): the
# default of CHECKERLESS_MAX_PIXELS (service/core/settings.py). A process that reads images for
# the service (a training child, a stylise server) takes the operator's value at its start
# (set_pixel_limit); every decode here and every video probe (models/video.py) honours it.
MAX_PIXELS = 40_000_000
_pixel_limit = MAX_PIXELS
HIGH_DEPTH_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
# Source bytes converted at a time: the temporaries of a band (its RGB rows, PNG's filter
# candidates) stay a few MB whatever the image's width.
BAND_BYTES = 1 << 18


class ImageError(ValueError):
    """An input that is not an image we can use; the message says what to fix."""


def set_pixel_limit(max_pixels: int) -> None:
    """This process's pixel limit (see MAX_PIXELS)."""
    global _pixel_limit
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise ValueError(f"the pixel limit must be a whole number >= 1, got {max_pixels!r}")
    _pixel_limit = max_pixels


def pixel_limit() -> int:
    return _pixel_limit


def decode(source: str | Path | bytes, *, max_pixels: int | None = None) -> Image.Image:
    """Open, check and decode an image, upright (EXIF applied), in the mode it is stored in.
    `max_pixels`: None, this process's limit (pixel_limit())."""
    max_pixels = max_pixels or _pixel_limit
    name = "upload" if isinstance(source, bytes) else str(source)
    fp = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        img = Image.open(fp, formats=FORMATS)
        w, h = img.size
        if w * h > max_pixels:
            raise ImageError(f"{name}: image is {w}x{h} = {w * h} pixels; the limit is {max_pixels}")
        if w < 1 or h < 1:
            raise ImageError(f"{name}: image has no pixels")
        img.load()
        ImageOps.exif_transpose(img, in_place=True)  # in place: no copy when there is nothing to turn
        return img
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{name}: is a folder, not an image") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image in a format we read ({', '.join(FORMATS)})") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{name}: image is too large to decode safely") from None
    except (OSError, SyntaxError, ValueError) as e:  # truncated or corrupt data
        raise ImageError(f"{name}: cannot decode image ({e})") from None


def open_image(source: str | Path | bytes, *, max_pixels: int | None = None) -> Image.Image:
    """Open, check and decode an image; return it as 8-bit RGB, upright (EXIF applied)."""
    img = decode(source, max_pixels=max_pixels)
    return _converting(source, lambda: to_rgb(img))


def _converting(source: str | Path | bytes, convert: Callable):
    try:
        return convert()
    except (OSError, ValueError) as e:  # a mode Pillow cannot convert
        name = "upload" if isinstance(source, bytes) else str(source)
        raise ImageError(f"{name}: cannot decode image ({e})") from None


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB. Transparent pixels are composited over white; high
    bit-depth grayscale is scaled, not clipped (Pillow's convert('RGB') clips I;16 at 255)."""
    if img.mode == "RGB":
        return img
    out = Image.new("RGB", img.size)
    for y, band in rgb_bands(img):
        out.paste(band, (0, y))
    return out


def rgb_bands(img: Image.Image) -> Iterator[tuple[int, Image.Image]]:
    """The image as 8-bit RGB a band of rows at a time: (top row, band)."""
    w, h = img.size
    rows = _band_rows(w)
    bands = [(y, min(h, y + rows)) for y in range(0, h, rows)]
    crop = lambda y0, y1: img.crop((0, y0, w, y1))  # noqa: E731  (keeps the palette and transparency)
    convert = _band_converter(img.mode, img.info, lambda: (crop(y0, y1) for y0, y1 in bands))
    for y0, y1 in bands:
        yield y0, convert(crop(y0, y1))


def _band_rows(width: int) -> int:
    return max(1, BAND_BYTES // (4 * width))  # 4: the widest source pixel we convert (RGBA, I, F)


def _band_converter(mode: str, info: dict, all_bands: Callable[[], Iterator[Image.Image]]):
    if mode in HIGH_DEPTH_MODES:
        # The scale is the whole image's: its maximum decides 8, 16 bits (or 0..1 for floats).
        top_value = float(np.max([np.max(np.asarray(b)) for b in all_bands()]))  # NaN, as a whole-image max
        top = 1.0 if mode == "F" and top_value <= 1.0 else (255.0 if top_value <= 255 else 65535.0)
        return lambda band: Image.fromarray(_to_8bit(np.asarray(band), top)).convert("RGB")
    if mode == "P":
        mode = "RGBA" if "transparency" in info else "RGB"
        if mode == "RGB":
            return lambda band: band.convert("RGB")
    if mode in ALPHA_MODES:
        return lambda band: Image.alpha_composite(Image.new("RGBA", band.size, (255, 255, 255, 255)),
                                                  band.convert("RGBA")).convert("RGB")
    return lambda band: band.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def _to_8bit(a: np.ndarray, top: float) -> np.ndarray:
    """High-depth values scaled so `top` is 255, rounded, clipped (one band)."""
    if a.dtype.kind == "f":  # float64 for a band only: the same rounding as the whole-image version had
        return np.clip(np.round(a.astype(np.float64) / top * 255.0), 0, 255).astype(np.uint8)
    v = np.clip(a.astype(np.int32), 0, int(top))
    # x * 255 / 65535 is x / 257 exactly; its fraction is never one half, so this is round().
    return (v if top == 255.0 else (v + 128) // 257).astype(np.uint8)


@dataclass(frozen=True)
class Png:
    data: bytes
    width: int
    height: int


def rgb_png(source: str | Path | bytes, *, max_pixels: int | None = None, compress_level: int = 1) -> Png:
    """Decode an image and write it as an 8-bit RGB PNG, holding at most the decoded image and
    a band: rows are converted and compressed as they come, never a second whole image."""
    img = decode(source, max_pixels=max_pixels)
    width, height = img.size
    if img.mode == "RGB":  # nothing to convert: Pillow's own encoder
        buf = io.BytesIO()
        img.save(buf, format="PNG", compress_level=compress_level)
        return Png(buf.getvalue(), width, height)
    chunks = _converting(source, lambda: list(_png_chunks(img, compress_level)))
    del img  # the decoded image goes before the chunks are joined
    return Png(b"".join(chunks), width, height)


def _png_chunks(img: Image.Image, compress_level: int) -> Iterator[bytes]:
    w, h = img.size
    yield b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))  # 8-bit RGB
    z = zlib.compressobj(compress_level)
    scanlines = _Scanlines(3 * w, _band_rows(w))
    for _, band in rgb_bands(img):
        if data := z.compress(scanlines(np.asarray(band).reshape(band.height, 3 * w))):
            yield _chunk(b"IDAT", data)
    yield _chunk(b"IDAT", z.flush()) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


class _Scanlines:
    """PNG's scanlines, a band of rows at a time: each row under the filter (None, Sub, Up,
    Average, Paeth) whose output has the least sum of |signed byte| (libpng's heuristic, which
    Pillow's encoder uses too). The buffers are made once per image, and selections are bit
    masks: fresh arrays per band and np.where on a ragged mask each cost more than the sums."""

    def __init__(self, width: int, rows: int):
        self.above = np.zeros(width, np.uint8)  # the row before the band (zeros before the first)
        self.candidates = np.empty((5, rows, width), np.uint8)
        self.cost = np.empty((5, rows, width), np.uint8)
        self.u8 = np.empty((6, rows, width), np.uint8)
        self.i16 = np.empty((6, rows, width), np.int16)
        self.mask = np.empty((2, rows, width), bool)

    def __call__(self, rows: np.ndarray) -> bytes:
        n = len(rows)
        cand, cost = self.candidates[:, :n], self.cost[:, :n]
        left, up, up_left, pred, ones, scratch = self.u8[:, :n]
        a, b, c, pa, pb, pc = self.i16[:, :n]
        near, nearest = self.mask[:, :n]
        up[0], up[1:] = self.above, rows[:-1]
        left[:, :3], left[:, 3:] = 0, rows[:, :-3]  # 3 bytes a pixel
        up_left[:, :3], up_left[:, 3:] = 0, up[:, :-3]
        # Paeth: whichever of left, up and up-left is nearest left + up - up_left (ties in that order).
        a[...], b[...], c[...] = left, up, up_left
        np.abs(np.subtract(b, c, out=pa), out=pa)
        np.abs(np.subtract(a, c, out=pb), out=pb)
        np.add(a, b, out=pc)
        np.abs(np.subtract(np.subtract(pc, c, out=pc), c, out=pc), out=pc)
        _select(np.less_equal(pb, pc, out=near), up, up_left, out=pred, ones=ones, scratch=scratch)
        np.logical_and(np.less_equal(pa, pb, out=near), np.less_equal(pa, pc, out=nearest), out=nearest)
        _select(nearest, left, pred, out=pred, ones=ones, scratch=scratch)
        # uint8 arithmetic wraps modulo 256, as PNG's does.
        cand[0] = rows
        np.subtract(rows, left, out=cand[1])
        np.subtract(rows, up, out=cand[2])
        average = np.add(np.bitwise_and(left, up, out=cand[3]),
                         np.right_shift(np.bitwise_xor(left, up, out=scratch), 1, out=scratch), out=cand[3])
        np.subtract(rows, average, out=cand[3])  # floor((left + up) / 2) without leaving 8 bits
        np.subtract(rows, pred, out=cand[4])
        np.minimum(cand, np.negative(cand, out=cost), out=cost)  # |byte as signed|
        best = cost.sum(axis=2, dtype=np.int32).argmin(axis=0)
        self.above = rows[-1].copy()
        lines = np.empty((n, 1 + rows.shape[1]), dtype=np.uint8)
        lines[:, 0] = best
        lines[:, 1:] = cand[best, np.arange(n)]
        return lines.tobytes()


def _select(mask: np.ndarray, x: np.ndarray, y: np.ndarray, *, out: np.ndarray, ones: np.ndarray,
            scratch: np.ndarray) -> None:
    """out = x where mask else y, by bits (out may be y)."""
    np.negative(mask.view(np.uint8), out=ones)  # 0xFF where mask
    np.bitwise_and(np.bitwise_xor(x, y, out=scratch), ones, out=scratch)
    np.bitwise_xor(y, scratch, out=out)


# torch is imported inside the tensor helpers: the API validates uploads with this module
# and must not load PyTorch.


def to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB image -> float tensor (3, H, W) in 0..255."""
    import torch

    return torch.from_numpy(np.array(img, dtype=np.float32)).permute(2, 0, 1).contiguous()


def from_tensor(t: torch.Tensor) -> Image.Image:
    """Float tensor (3, H, W) in 0..255 -> RGB image. Rounding and clipping to 8 bits is the
    only change: no smoothing, so artifacts stay visible."""
    import torch

    a = t.detach().float().clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(a, mode="RGB")


def load_tensor(source: str | Path | bytes) -> torch.Tensor:
    return to_tensor(open_image(source))


def save_png(t: torch.Tensor, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from_tensor(t).save(path, format="PNG")
    return path


def resize_shorter(img: Image.Image, size: int) -> Image.Image:
    """Scale so the shorter side is `size` (Lanczos: a resample filter, not a blur of the
    network's output; it only prepares inputs)."""
    w, h = img.size
    s = size / min(w, h)
    return img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS)


def check_folder(folder: str | Path) -> Path:
    """The folder, or ImageError if it is missing or a file."""
    root = Path(folder)
    if not root.exists():
        raise ImageError(f"{root}: no such folder")
    if not root.is_dir():
        raise ImageError(f"{root}: is a file, not a folder of images")
    return root


def list_images(folder: str | Path) -> list[Path]:
    """Every non-hidden file under a folder, recursively, sorted: a file that is not an image
    is found unreadable later and reported, not silently ignored."""
    root = check_folder(folder)
    return sorted(
        p for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
