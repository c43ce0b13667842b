"""The built-in styles (public assets, no API key): what the web form offers beside an upload."""

from __future__ import annotations

from fastapi import APIRouter, Response

from service.core import builtin_styles
from service.core.builtin_styles import BUILTIN_STYLES, PREFIX

router = APIRouter(tags=["styles"])


@router.get("/builtin-styles")
def list_builtin_styles() -> list[dict]:
    """The styles every server has (images scikit-image ships): a job or experiment names one as
    `style_id: "builtin:<name>"`."""
    return [{"name": s.name, "id": f"{PREFIX}{s.name}", "title": s.title,
             "thumbnail": f"/v1/builtin-styles/{s.name}/thumbnail"} for s in BUILTIN_STYLES.values()]


@router.get("/builtin-styles/{name}/thumbnail", responses={200: {"content": {"image/png": {}}}})
def builtin_style_thumbnail(name: str) -> Response:
    """A small PNG of a built-in style (its longer side THUMBNAIL_SIDE pixels)."""
    return Response(builtin_styles.thumbnail_png(builtin_styles.builtin_name(name)), media_type="image/png",
                    headers={"Cache-Control": "public, max-age=86400"})
