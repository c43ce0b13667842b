from __future__ import annotations

import json
from collections.abc import Iterator

from fastapi import APIRouter, File, Query, Request, Response, UploadFile

from models.images import ImageError
from service.api.deps import CurrentKey, ServicesDep
from service.api.schemas import ContentSetPublic, StylePublic
from service.api.uploads import UnpackBudget, check_image, is_zip, iter_zip
from service.core.content_sets import (SKIPPED_SHOWN, ContentSetRecord, ContentSetState, ContentSource, Manifest,
                                       ManifestImage, Progress, Skipped)
from service.core import usage
from service.core.keys import Keys, new_id
from service.core.records import now
from service.core.submit import check_storage

router = APIRouter(tags=["uploads"])


@router.post("/styles", status_code=201, response_model=StylePublic)
def upload_style(services: ServicesDep, key: CurrentKey, file: UploadFile = File(...)) -> StylePublic:
    """Upload a style image (PNG, JPEG, WebP, BMP, TIFF or GIF)."""
    check_storage(services.stores, key, services.settings)
    image = check_image(file.file.read(), name=file.filename or "style", max_pixels=services.settings.max_pixels)
    style = StylePublic(id=new_id(), width=image.width, height=image.height, name=image.name, created_at=now())
    services.store.put_bytes(Keys.style(style.id), image.png, content_type="image/png")
    meta = {**style.model_dump(mode="json"), "owner": key.owner}
    services.store.put_bytes(Keys.style_meta(style.id), json.dumps(meta).encode(), content_type="application/json")
    usage.count_prefix(services.store, key.owner, Keys.style_prefix(style.id))
    return style


@router.get("/styles", response_model=list[StylePublic])
def list_styles(services: ServicesDep, key: CurrentKey) -> list[dict]:
    """Your uploaded styles, newest first."""
    return services.stores.styles.list(key.scope)


@router.get("/styles/{style_id}/image", responses={200: {"content": {"image/png": {}}}})
def get_style_image(style_id: str, services: ServicesDep, key: CurrentKey) -> Response:
    """An uploaded style's image (PNG, as stored): what a job's page shows beside its outputs."""
    services.stores.styles.meta(style_id, key.scope)
    return Response(services.store.get_bytes(Keys.style(style_id)), media_type="image/png")


@router.delete("/styles/{style_id}", status_code=204)
def delete_style(style_id: str, services: ServicesDep, key: CurrentKey) -> Response:
    """Delete a style; refused (409) while an unfinished job uses it. Trained networks keep theirs."""
    services.stores.styles.delete(style_id, key.scope)
    return Response(status_code=204)


@router.post("/content-sets", status_code=201, response_model=ContentSetPublic)
def upload_content_set(request: Request, services: ServicesDep, key: CurrentKey,
                       files: list[UploadFile] = File(...),
                       name_: str | None = Query(None, alias="name", max_length=200)) -> ContentSetPublic:
    """Upload content images: several files, or zip files of images (stored or deflate members).
    Unreadable files are skipped and listed; a set with no readable image is refused."""
    settings = services.settings
    check_storage(services.stores, key, settings)
    budget = UnpackBudget(total_bytes=settings.max_unpacked_bytes, member_bytes=settings.max_member_bytes,
                          files=settings.max_content_images)
    set_id, images, skipped = new_id(), [], []
    try:
        for name, data in _members(files, budget):  # one at a time: checked, stored, let go
            try:
                if isinstance(data, ImageError):
                    raise data
                image = check_image(data, name=name, max_pixels=settings.max_pixels)
            except ImageError as e:
                skipped.append(Skipped(name=name, reason=str(e)))
                continue
            stored = Keys.content_image(set_id, len(images))
            services.store.put_bytes(stored, image.png, content_type="image/png")
            images.append(ManifestImage(name=image.name, key=stored, bytes=len(image.png), width=image.width,
                                        height=image.height))
        if not images:
            raise ImageError(f"no readable image among {len(skipped)} file(s): "
                             f"{skipped[0].reason if skipped else 'none sent'}")
        # Checked as they arrived: ready at once, with the manifest every ready set has.
        services.stores.content_sets.put_manifest(set_id, Manifest(images=images, skipped=skipped))
        record = services.stores.content_sets.create(ContentSetRecord(
            id=set_id, owner=key.owner, name=name_ or None, source=ContentSource.images, state=ContentSetState.ready,
            count=len(images), skipped=[s.model_dump() for s in skipped[:SKIPPED_SHOWN]],
            progress=Progress(members=len(images) + len(skipped), bytes_read=sum(i.bytes for i in images))))
        usage.count_prefix(services.store, key.owner, Keys.content_set_prefix(set_id))
    except BaseException:
        services.store.delete_prefix(Keys.content_set_prefix(set_id))  # nothing half-made is kept
        raise
    finally:
        if skipped:
            request.app.state.metrics.refused.labels("skipped_file").inc(len(skipped))
    return ContentSetPublic.of(record)


def _members(files: list[UploadFile], budget: UnpackBudget) -> Iterator[tuple[str, bytes | ImageError]]:
    """Every image sent: plain files as they are, zips member by member. Uploads arrive
    spooled to disk by the form parser; a zip is read from there, never whole into memory."""
    for f in files:
        if is_zip(f.file):
            yield from iter_zip(f.file, budget=budget)
        else:
            budget.take_files(1)
            yield f.filename or "file", f.file.read()
