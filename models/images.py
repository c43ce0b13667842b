"""Reading and writing images: every mode Pillow reads becomes 8-bit RGB, or a clear error.

The rules: an allow-list of formats, the pixel count checked from the header before
decoding (Pillow's own bomb check is not enough for our limit), and every decoder failure
turned into `ImageError` with the reason.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

if TYPE_CHECKING:
    import torch

FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")
MAX_PIXELS = 40_000_000  # our own limit, checked before decoding (a 40 MP photo is fine)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


class ImageError(ValueError):
    """An input that is not an image we can use; the message says what to fix."""


def open_image(source: str | Path | bytes, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open, check and decode an image; return it as 8-bit RGB, upright (EXIF applied)."""
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
        img = ImageOps.exif_transpose(img)
        return to_rgb(img)
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


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB. Transparent pixels are composited over white; high
    bit-depth grayscale is scaled, not clipped (Pillow's convert('RGB') clips I;16 at 255)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        a = np.asarray(img, dtype=np.float64)
        top = 1.0 if img.mode == "F" and a.max() <= 1.0 else (255.0 if a.max() <= 255 else 65535.0)
        a8 = np.clip(np.round(a / top * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(a8).convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


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


def list_images(folder: str | Path) -> list[Path]:
    """Every non-hidden file under a folder, recursively, sorted: a file that is not an image
    is found unreadable later and reported, not silently ignored."""
    root = Path(folder)
    if not root.exists():
        raise ImageError(f"{root}: no such folder")
    if not root.is_dir():
        raise ImageError(f"{root}: is a file, not a folder of images")
    return sorted(
        p for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
