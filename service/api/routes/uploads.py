from __future__ import annotations

import json

from fastapi import APIRouter, File, UploadFile

from models.images import ImageError
from service.api.deps import ServicesDep
from service.api.schemas import ContentSetPublic, StylePublic
from service.api.uploads import check_image, expand_zip
from service.core.keys import Keys, new_id

router = APIRouter(tags=["uploads"])


@router.post("/styles", status_code=201, response_model=StylePublic)
def upload_style(services: ServicesDep, file: UploadFile = File(...)) -> StylePublic:
    """Upload a style image (PNG, JPEG, WebP, BMP, TIFF or GIF)."""
    image = check_image(file.file.read(), name=file.filename or "style", max_pixels=services.settings.max_pixels)
    style_id = new_id()
    services.store.put_bytes(Keys.style(style_id), image.png, content_type="image/png")
    return StylePublic(id=style_id, width=image.width, height=image.height)


@router.post("/content-sets", status_code=201, response_model=ContentSetPublic)
def upload_content_set(services: ServicesDep, files: list[UploadFile] = File(...)) -> ContentSetPublic:
    """Upload content images: several files, or zip files of images. Unreadable files are
    skipped and listed; a set with no readable image is refused."""
    settings = services.settings
    named: list[tuple[str, bytes]] = []
    for f in files:
        data, name = f.file.read(), f.filename or "file"
        if data[:4] == b"PK\x03\x04":
            named += expand_zip(data, max_total_bytes=4 * settings.max_upload_bytes, max_files=settings.max_content_images)
        else:
            named.append((name, data))
    if len(named) > settings.max_content_images:
        raise ImageError(f"{len(named)} images; the limit is {settings.max_content_images}")
    good, skipped = [], []
    for name, data in named:
        try:
            good.append(check_image(data, name=name, max_pixels=settings.max_pixels))
        except ImageError as e:
            skipped.append({"file": name, "reason": str(e)})
    if not good:
        raise ImageError(f"no readable image among {len(named)} file(s): {skipped[0]['reason'] if skipped else 'none sent'}")
    set_id = new_id()
    for i, image in enumerate(good):
        services.store.put_bytes(Keys.content_image(set_id, i), image.png, content_type="image/png")
    meta = {"count": len(good), "names": [g.name for g in good], "skipped": skipped}
    services.store.put_bytes(Keys.content_meta(set_id), json.dumps(meta).encode(), content_type="application/json")
    return ContentSetPublic(id=set_id, count=len(good), skipped=skipped)
