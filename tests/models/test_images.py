import io

import numpy as np
import pytest
from PIL import Image

from models.images import ImageError, open_image
from tests.conftest import rgb_noise


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
