"""The images the project ships with, and nothing else: photographs and styles that
scikit-image ships in its wheel (nothing is downloaded), and a style named by file or by
built-in name. Free of training (no Lightning), so stylising, exporting and measuring use them
without importing it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from models.images import ImageError, open_image, to_rgb
from models.vocabulary import BUILTIN_STYLE_INFO


def _skimage(fn: str, index: int | None = None) -> Callable[[], Image.Image]:
    @functools.cache  # small, shipped images: decode once per process
    def load() -> Image.Image:
        import skimage.data

        a = getattr(skimage.data, fn)()
        return to_rgb(Image.fromarray(a[index] if index is not None else a))

    return load


# Photographs that scikit-image ships in its wheel (nothing is downloaded).
BUILTIN_PHOTOS = {
    "astronaut": _skimage("astronaut"),
    "coffee": _skimage("coffee"),
    "chelsea": _skimage("chelsea"),
    "rocket": _skimage("rocket"),
    "camera": _skimage("camera"),
    "motorcycle": _skimage("stereo_motorcycle", 0),
}
# The built-in styles, named in models/vocabulary.py.
BUILTIN_STYLES = {name: _skimage(info.source) for name, info in BUILTIN_STYLE_INFO.items()}


def load_style(spec: str | Path) -> tuple[str, Image.Image]:
    """A style image from a file, or a built-in style by name; returns (name, RGB image).
    Torch-free: `train` calls it before it loads torch, so a missing or broken style is told
    in about a second."""
    path = Path(spec)
    if path.exists():  # a file wins over a built-in of the same name
        return path.name, open_image(path)
    if str(spec) in BUILTIN_STYLES:
        return str(spec), BUILTIN_STYLES[str(spec)]()
    raise ImageError(f"{spec}: no such file (built-in styles: {', '.join(BUILTIN_STYLES)})")
