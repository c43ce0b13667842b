import io
import math
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from models import images
from models.images import ALPHA_MODES, HIGH_DEPTH_MODES, MAX_PIXELS, ImageError, open_image, rgb_png
from tests.conftest import rgb_noise

ROOT = Path(__file__).resolve().parents[2]


def png_bytes(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_grayscale_becomes_gray_rgb():
    out = open_image(png_bytes(Image.new("L", (5, 4), 100)))
    assert out.mode == "RGB" and out.size == (5, 4)
    assert np.asarray(out)[0, 0].tolist() == [100, 100, 100]


def test_16_bit_grayscale_is_scaled_not_clipped():
    a = np.full((4, 6), 32896, dtype=np.uint16)  # mid-gray in 16 bits
    out = open_image(png_bytes(Image.fromarray(a)))
    assert np.asarray(out)[0, 0].tolist() == [128, 128, 128]


def test_transparency_is_composited_over_white():
    rgba = Image.new("RGBA", (3, 3), (255, 0, 0, 0))
    assert np.asarray(open_image(png_bytes(rgba)))[0, 0].tolist() == [255, 255, 255]
    half = Image.new("LA", (3, 3), (0, 128))
    assert np.asarray(open_image(png_bytes(half)))[0, 0].tolist() == [127, 127, 127]


def test_palette_and_palette_with_transparency():
    p = rgb_noise(8, 8).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    assert open_image(png_bytes(p)).mode == "RGB"
    p.info["transparency"] = 0
    assert open_image(png_bytes(p, transparency=0)).mode == "RGB"


def test_cmyk_jpeg():
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # red
    r, g, b = np.asarray(open_image(png_bytes(cmyk, "JPEG")))[1, 1]
    assert r > 200 and g < 60 and b < 60


def test_exif_rotation_is_applied():
    img = rgb_noise(10, 20)  # 20 wide, 10 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    out = open_image(png_bytes(img, "JPEG", exif=exif))
    assert out.size == (10, 20)


def test_one_bit_image():
    assert open_image(png_bytes(Image.new("1", (4, 4), 1))).getpixel((0, 0)) == (255, 255, 255)


def test_a_text_file_named_png_is_a_clear_error(tmp_path):
    p = tmp_path / "fake.png"
    p.write_text("hello, not an image")
    with pytest.raises(ImageError, match="not an image in a format we read"):
        open_image(p)


def test_a_truncated_png_is_a_clear_error():
    data = png_bytes(rgb_noise(64, 64))
    with pytest.raises(ImageError, match="cannot decode"):
        open_image(data[: len(data) // 2])


def test_too_many_pixels_is_refused_before_decoding():
    with pytest.raises(ImageError, match="the limit is 100"):
        open_image(png_bytes(Image.new("RGB", (20, 20))), max_pixels=100)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        open_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="is a folder"):
        open_image(tmp_path)


# --- every mode to 8-bit RGB a band at a time (models/images.py) --------------------------


def reference_rgb(img: Image.Image) -> np.ndarray:
    """The whole-image conversion the band-wise one replaced (float64 for high bit depths,
    Pillow's compositing over white): the colours it must keep, within one level."""
    if img.mode in HIGH_DEPTH_MODES:
        a = np.asarray(img, dtype=np.float64)
        top = 1.0 if img.mode == "F" and a.max() <= 1.0 else (255.0 if a.max() <= 255 else 65535.0)
        return np.asarray(Image.fromarray(np.clip(np.round(a / top * 255.0), 0, 255).astype(np.uint8)).convert("RGB"))
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ALPHA_MODES:
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, img.convert("RGBA")).convert("RGB"))
    return np.asarray(img.convert("RGB"))


def in_mode(photo: np.ndarray, mode: str) -> tuple[Image.Image, str, dict]:
    """A scikit-image photo in `mode`, with a format that stores that mode."""
    rgb = Image.fromarray(photo)
    grey = np.asarray(rgb.convert("L")).astype(np.int64)
    ramp = np.arange(photo.shape[1])[None, :] % 256
    alpha = np.broadcast_to(ramp, grey.shape).astype(np.uint8)
    made = {
        "I;16": lambda: (Image.fromarray((grey * 257 - ramp).clip(0).astype(np.uint16)), "PNG", {}),
        "I;16B": lambda: (Image.frombytes("I;16B", rgb.size, (grey * 250).astype(">u2").tobytes()), "TIFF", {}),
        "I": lambda: (Image.fromarray((grey * 300 - 1000).astype(np.int32)), "TIFF", {}),
        "F": lambda: (Image.fromarray((grey / 255).astype(np.float32)), "TIFF", {}),
        "LA": lambda: (Image.merge("LA", (rgb.convert("L"), Image.fromarray(alpha))), "PNG", {}),
        "RGBA": lambda: (Image.fromarray(np.dstack([photo, alpha]), "RGBA"), "PNG", {}),
        "P": lambda: (rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64), "PNG", {}),
        "P with transparency": lambda: (rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64), "PNG",
                                        {"transparency": 3}),
        "CMYK": lambda: (rgb.convert("CMYK"), "JPEG", {"quality": 95}),
        "YCbCr": lambda: (rgb.convert("YCbCr"), "TIFF", {}),
        "1": lambda: (rgb.convert("1"), "PNG", {}),
        "L": lambda: (rgb.convert("L"), "PNG", {}),
    }
    return made[mode]()


MODES = ["I;16", "I;16B", "I", "F", "LA", "RGBA", "P", "P with transparency", "CMYK", "YCbCr", "1", "L"]


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_keeps_its_colours_band_by_band(mode, monkeypatch):
    monkeypatch.setattr(images, "BAND_BYTES", 1 << 12)  # a few rows a band: many band edges
    for photo in (skimage.data.astronaut(), skimage.data.chelsea()):
        img, fmt, options = in_mode(photo, mode)
        data = png_bytes(img, fmt, **options)
        stored = Image.open(io.BytesIO(data))
        assert stored.mode == mode.split()[0]
        want = reference_rgb(stored).astype(int)
        out = open_image(data)
        assert out.mode == "RGB" and np.abs(np.asarray(out).astype(int) - want).max() <= 1
        png = rgb_png(data)  # the API's check: the same pixels, written as they are converted
        written = Image.open(io.BytesIO(png.data))
        assert written.mode == "RGB" and (png.width, png.height) == written.size == stored.size
        assert np.abs(np.asarray(written).astype(int) - want).max() <= 1


@pytest.mark.parametrize("size", [(1, 1), (7, 1), (1, 7), (13, 5)])
def test_the_png_writer_makes_valid_files_of_any_shape(size):
    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 4), dtype=np.uint8), "RGBA")
    data = rgb_png(png_bytes(img)).data
    pos = 8
    while pos < len(data):  # every chunk's CRC, which Pillow does not check for image data
        n = int.from_bytes(data[pos:pos + 4], "big")
        assert zlib.crc32(data[pos + 4:pos + 8 + n]) == int.from_bytes(data[pos + 8 + n:pos + 12 + n], "big")
        pos += 12 + n
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), reference_rgb(img))


# Decoding at the default pixel limit, in a fresh process: its peak RSS above its RSS just
# before. The budget: the decoded image itself (what Pillow holds: 2 bytes a pixel for 16-bit
# grey, 4 for RGBA), open_image's RGB result besides (4 bytes a pixel: Pillow pads RGB), and
# 40 MB for bands, buffers and the PNG written. Through float64 the 16-bit one took +995 MB.
# (VmHWM, not getrusage: a child's ru_maxrss starts at its parent's, this test's own.)
MEASURE = """
import sys
from models.images import open_image, rgb_png
def kb(field):
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith(field)).split()[1])
data = open(sys.argv[2], "rb").read()
rest = kb("VmHWM:")
(rgb_png if sys.argv[1] == "rgb_png" else open_image)(data)
print((kb("VmHWM:") - rest) * 1024)
"""


@pytest.mark.slow
def test_decoding_at_the_pixel_limit_stays_within_its_memory_budget(tmp_path):
    side = math.isqrt(MAX_PIXELS)
    ramp = np.linspace(0, 1, side)
    grey = Image.fromarray(((ramp[:, None] + ramp[None, :]) * 32767.5).astype(np.uint16))
    grey.save(tmp_path / "grey16.png")
    del grey
    rgba = np.empty((side, side, 4), np.uint8)
    rgba[..., :3] = (ramp * 255).astype(np.uint8)[None, :, None]
    rgba[..., 3] = (ramp[::-1] * 255).astype(np.uint8)[:, None]
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    del rgba
    mb, pixels = 1024 * 1024, side * side
    grown, budgets = {}, {}
    for name, decoded in (("grey16.png", 2 * pixels), ("rgba.png", 4 * pixels)):
        for how, result in (("rgb_png", 0), ("open_image", 4 * pixels)):
            out = subprocess.run([sys.executable, "-c", MEASURE, how, str(tmp_path / name)], cwd=ROOT,
                                 capture_output=True, text=True, check=True)
            grown[name, how], budgets[name, how] = int(out.stdout), decoded + result + 40 * mb
    print(f"\n{side}x{side} ({pixels:,d} pixels), peak RSS above rest:\n" + "\n".join(
        f"{name:12s} {how:11s} {grown[name, how] / mb:+6.0f} MB  (budget {budgets[name, how] / mb:.0f} MB)"
        for name, how in grown))
    assert all(grown[case] <= budgets[case] for case in grown), grown
    assert all(grown[name, "rgb_png"] < 200 * mb for name in ("grey16.png", "rgba.png"))  # the API's check
