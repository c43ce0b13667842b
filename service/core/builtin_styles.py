"""The built-in styles as the service speaks of them: `style_id: "builtin:<name>"` in a job or
experiment request, and the list and thumbnails the web form offers (GET /v1/builtin-styles).

The names, titles and sources are models/vocabulary.py's BUILTIN_STYLE_INFO (torch-free, so the
API reads them without loading PyTorch); the worker's training child resolves a name with
models.data.load_style, which loads the same images.
"""

from __future__ import annotations

import functools
import io

from PIL import Image

from models.vocabulary import BUILTIN_STYLE_INFO as BUILTIN_STYLES
from service.core.errors import NotFound

PREFIX = "builtin:"
THUMBNAIL_SIDE = 128  # the longer side of a thumbnail, in pixels


def is_builtin(style_id: str) -> bool:
    return style_id.startswith(PREFIX)


def builtin_name(style_id: str) -> str:
    """The name in "builtin:<name>"; NotFound (a 404 with the valid names) for an unknown one."""
    name = style_id.removeprefix(PREFIX)
    if name not in BUILTIN_STYLES:
        raise NotFound(f"no built-in style {name!r}; built-in styles: {', '.join(BUILTIN_STYLES)}")
    return name


def image(name: str) -> Image.Image:
    """The built-in style's image, RGB (the grey textures as three equal channels)."""
    import skimage.data

    return Image.fromarray(getattr(skimage.data, BUILTIN_STYLES[builtin_name(name)].source)()).convert("RGB")


@functools.cache  # rendered once per process, then served from memory
def thumbnail_png(name: str) -> bytes:
    thumb = image(name)
    thumb.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    thumb.save(buf, format="PNG")
    return buf.getvalue()
