"""The built-in styles as the service speaks of them: `style_id: "builtin:<name>"` in a job or
experiment request, and the list and thumbnails the web form offers (GET /v1/builtin-styles).

The styles themselves are models/data.py's BUILTIN_STYLES (images scikit-image ships, nothing
downloaded); the worker's training child resolves a name with models.data.load_style. That module
imports torch, which the API never does, so the names and sources are mirrored here, torch-free,
and tests/service/test_builtin_styles.py checks that both give the same names and pixels.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass

from PIL import Image

from service.core.errors import NotFound

PREFIX = "builtin:"
THUMBNAIL_SIDE = 128  # the longer side of a thumbnail, in pixels


@dataclass(frozen=True)
class BuiltinStyle:
    name: str
    title: str
    source: str  # the function of skimage.data that returns it


BUILTIN_STYLES: dict[str, BuiltinStyle] = {s.name: s for s in [
    BuiltinStyle("ihc", "Immunohistochemistry (stained tissue)", "immunohistochemistry"),
    BuiltinStyle("hubble", "Hubble deep field", "hubble_deep_field"),
    BuiltinStyle("colorwheel", "Colour wheel", "colorwheel"),
    BuiltinStyle("gravel", "Gravel (grey texture)", "gravel"),
    BuiltinStyle("brick", "Brick wall (grey texture)", "brick"),
]}


def is_builtin(style_id: str) -> bool:
    return style_id.startswith(PREFIX)


def builtin_name(style_id: str) -> str:
    """The name in "builtin:<name>"; NotFound (a 404 with the valid names) for an unknown one."""
    name = style_id.removeprefix(PREFIX)
    if name not in BUILTIN_STYLES:
        raise NotFound(f"no built-in style {name!r}; built-in styles: {', '.join(BUILTIN_STYLES)}")
    return name


def style_label(style_id: str) -> str:
    """A built-in's name, or an uploaded style's id as it is."""
    return style_id.removeprefix(PREFIX) if is_builtin(style_id) else style_id


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
