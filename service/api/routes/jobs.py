from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse

from models.stylize_options import COLOR_MODES, DEFAULT_COLORS, DEFAULT_STRENGTH, STRENGTH_RANGE, StylizeOptions
from service.api.deps import PAGED, CurrentKey, PageDep, Services, ServicesDep, link_next
from service.api.json_body import JsonBodyRoute
from service.api.schemas import JobCreate, JobPublic, StylizationPublic
from service.api.uploads import check_image
from service.core.builtin_styles import builtin_name, is_builtin
from service.core.errors import Conflict, NotFound
from service.core.keys import Keys
from service.core.records import JobRecord, StylizeRecord, measured_by
from service.core.submit import request_stylize, request_stylize_video, submit_job

router = APIRouter(tags=["jobs"], route_class=JsonBodyRoute)  # JSON bodies under MAX_JSON_BYTES
FILES = {"checkpoint": ("application/octet-stream", lambda r: r.checkpoint_key),
         "report": ("application/json", lambda r: Keys.report(r.id)), "preview": ("image/png", lambda r: Keys.preview(r.id)),
         # the trained network exported at the job's end (CHECKERLESS_EXPORT_FORMATS)
         "onnx": ("application/octet-stream", lambda r: Keys.export(r.id, "onnx")),
         "torchscript": ("application/octet-stream", lambda r: Keys.export(r.id, "torchscript"))}


ARTIFACT_PREFIXES = ("artifact_", "eq_t")  # the probe's artifact measures: checkerboard scores, shift equivariance


def split_probe(latest: dict[str, float]) -> dict[str, dict]:
    """The record keeps the probe's latest row whole; the API shows its artifact measures and its
    quality (style and content distance, with what measured them) apart."""
    artifacts = {k: v for k, v in latest.items() if k.startswith(ARTIFACT_PREFIXES)}
    quality: dict = {k: v for k, v in latest.items() if k not in artifacts}
    if quality:
        quality["quality_measure"] = measured_by(latest)
    return {"artifacts": artifacts, "quality": quality}


def style_public(style: dict) -> dict:
    """A job's style as the API shows it: id, name, and where its image is."""
    image = (f"/v1/builtin-styles/{builtin_name(style['id'])}/thumbnail" if is_builtin(style["id"])
             else f"/v1/styles/{style['id']}/image")
    return {"id": style["id"], "name": style.get("name"), "image_url": image}


def public(services: Services, record: JobRecord) -> JobPublic:
    base = f"/v1/jobs/{record.id}"
    links = {"self": base}
    links.update({name: f"{base}/{name}" for name in FILES if name in record.outputs})
    return JobPublic(
        **record.model_dump(include={"id", "state", "step", "steps", "config", "style_id", "content_set_id", "losses",
                                     "seconds_per_step", "devices", "attempts", "history", "resumed_from_step",
                                     "error", "created_at", "started_at", "finished_at", "loss_curve",
                                     "artifact_curve", "trained_precision"}),
        **split_probe(record.artifacts), quality_measure=record.quality_measure,
        panel=[{k: v for k, v in p.items() if k != "key"} | {"url": f"{base}/panel/{p['name']}"} for p in record.panel],
        style_panels=[{"style": s, "panel": [{k: v for k, v in p.items() if k != "key"}
                                             | {"url": f"{base}/panel/{p['name']}?style={s}"} for p in panel]}
                      for s, panel in enumerate([record.panel, *record.style_panels]) if panel]
        if record.style_panels else [],
        decoder=record.config["decoder"], links=links, styles=[style_public(s) for s in record.style_list],
        cancel_requested=not record.final and record.cancel_requested_at is not None,
    )


@router.post("/jobs", status_code=201, response_model=JobPublic)
def create_job(request: JobCreate, services: ServicesDep, key: CurrentKey) -> JobPublic:
    """Submit a training job; it is queued for a worker."""
    settings = {**request.train_settings(services.settings.checkpoint_every), "decoder": request.decoder}
    return public(services, submit_job(services.stores, services.queue, key, style_ids=request.styles,
                                       content_set_id=request.content_set_id, settings=settings,
                                       limits=services.settings, webhook_url=request.webhook_url))


@router.get("/jobs", response_model=list[JobPublic], responses=PAGED)
def list_jobs(services: ServicesDep, key: CurrentKey, page: PageDep, request: Request,
              response: Response) -> list[JobPublic]:
    """Your jobs (an admin key: everyone's), newest first, a page at a time."""
    records, cursor = services.stores.jobs.list(key.scope, limit=page.limit, cursor=page.cursor)
    link_next(request, response, cursor)
    return [public(services, r) for r in records]


@router.get("/jobs/{job_id}", response_model=JobPublic)
def get_job(job_id: str, services: ServicesDep, key: CurrentKey) -> JobPublic:
    """One job: state, step of steps, latest losses, artifact scores, shift equivariance and style/content
    distances (and what measured them), attempts, the reason if it failed."""
    return public(services, services.stores.jobs.get(job_id, key.scope))


@router.post("/jobs/{job_id}/cancel", status_code=202, response_model=JobPublic)
def cancel_job(job_id: str, services: ServicesDep, key: CurrentKey) -> JobPublic:
    """Ask a queued or running job to stop; it keeps its last checkpoint."""
    return public(services, services.stores.jobs.request_cancel(job_id, key.scope))


@router.delete("/jobs/{job_id}", status_code=204)
def delete_job(job_id: str, services: ServicesDep, key: CurrentKey) -> Response:
    """Delete a finished job and every object it stored."""
    record = services.stores.jobs.get(job_id, key.scope)
    if not record.final:
        raise Conflict(f"job {job_id} is {record.state.value}; cancel it first")
    if record.experiment_id:
        raise Conflict(f"job {job_id} is part of experiment {record.experiment_id}; delete the experiment")
    services.stores.jobs.delete(job_id)
    return Response(status_code=204)


@router.get("/jobs/{job_id}/{name}", responses={200: {"content": {"application/octet-stream": {}}}})
def get_job_file(job_id: str, name: str, services: ServicesDep, key: CurrentKey, presign: bool = False) -> Response:
    """A job's checkpoint, report, preview, or its network exported as onnx or torchscript:
    streamed, or with ?presign=true a presigned URL (S3 stores)."""
    if name not in FILES:
        raise NotFound(f"no file {name!r}; jobs have: {', '.join(FILES)}")
    record = services.stores.jobs.get(job_id, key.scope)
    media, key_of = FILES[name]
    stored = key_of(record)
    if name not in record.outputs and not (name == "checkpoint" and services.store.exists(stored)):
        raise NotFound(f"job {job_id} has no {name} yet (it is {record.state.value})")
    shown = "last.ckpt" if name == "checkpoint" else stored.rsplit("/", 1)[1]  # one name whatever its attempt
    return _object(services, stored, media, presign=presign, filename=f"{job_id}-{shown}")


def _object(services: Services, key: str, media: str, *, presign: bool, filename: str) -> Response:
    if presign:
        url = services.store.presigned_url(key, expires_s=services.settings.url_expiry_s)
        if url is None:
            raise Conflict("this server's store is a local folder: there are no presigned URLs; fetch the file itself")
        return JSONResponse({"url": url})
    return StreamingResponse(services.store.iter_chunks(key), media_type=media,
                             headers={"Content-Length": str(services.store.size(key)),
                                      "Content-Disposition": f'inline; filename="{filename}"'})


@router.get("/jobs/{job_id}/panel/{name}", responses={200: {"content": {"image/png": {}}}})
def get_panel_image(job_id: str, name: str, services: ServicesDep, key: CurrentKey, style: int = 0) -> Response:
    """The finished network's output on one photo of the fixed panel (PNG); ?style=i: with its style i."""
    record = services.stores.jobs.get(job_id, key.scope)
    panels = [record.panel, *record.style_panels]
    panel = panels[style] if 0 <= style < len(panels) else []
    item = next((p for p in panel if p["name"] == name), None)
    if item is None:
        raise NotFound(f"job {job_id} has no panel image {name!r}" + (f" for style {style}" if style else ""))
    return _object(services, item["key"], "image/png", presign=False, filename=f"{job_id}-{name}.png")


# The stylise options as multipart form fields (models/stylize_options.py checks them).
StyleField = Annotated[str | None, Form(description="Which style of a several-style network: its index (from 0).")]
MixField = Annotated[str | None, Form(description="A mix of the network's styles: one weight each, e.g. 0.5,0.5 "
                                      "(instead of style).")]
StrengthField = Annotated[str | None, Form(description=f"How much style, from {STRENGTH_RANGE[0]:g} (the photo) to "
                                           f"{STRENGTH_RANGE[1]:g} (the network's output) [default 1].",
                                           json_schema_extra={"minimum": STRENGTH_RANGE[0], "maximum": STRENGTH_RANGE[1],
                                                              "default": DEFAULT_STRENGTH})]
ColorsField = Annotated[str | None, Form(description=f"The colours: {', '.join(COLOR_MODES)} (luminance and histogram "
                                         "keep the photo's) [default style].",
                                         json_schema_extra={"enum": list(COLOR_MODES), "default": DEFAULT_COLORS})]


def stylize_options(style: str | None, mix: str | None, strength: str | None, colors: str | None) -> StylizeOptions:
    """The form's options, checked (ValueError, a 422 with the reason)."""
    return StylizeOptions.parse(style=style, mix=mix, strength=strength, colors=colors)


@router.post("/jobs/{job_id}/stylize", status_code=202, response_model=StylizationPublic)
def stylize(job_id: str, services: ServicesDep, key: CurrentKey, files: list[UploadFile] = File(...),
            style: StyleField = None, mix: MixField = None, strength: StrengthField = None,
            colors: ColorsField = None) -> StylizationPublic:
    """Stylise one or more images with a finished job's network (queued; poll the result), with one of its
    styles or a mix, at a strength, keeping the style's colours or the photo's."""
    options = stylize_options(style, mix, strength, colors)
    images = [check_image(f.file.read(), name=f.filename or f"image {i}", max_pixels=services.settings.max_pixels)
              for i, f in enumerate(files)]
    return stylization_public(request_stylize(services.stores, services.queue, key, job_id, [i.png for i in images],
                                              services.settings, options))


@router.post("/jobs/{job_id}/stylize-video", status_code=202, response_model=StylizationPublic)
def stylize_video(job_id: str, services: ServicesDep, key: CurrentKey, file: UploadFile = File(...),
                  style: StyleField = None, mix: MixField = None, strength: StrengthField = None,
                  colors: ColorsField = None) -> StylizationPublic:
    """Stylise a video frame by frame (queued; poll GET /v1/stylizations/{id} for its progress in frames): the
    result is an mp4 of the same frame count, rate and size with the audio kept, and its flicker. A file ffmpeg
    cannot read fails the stylisation with the reason. Bodies up to the server's max_video_bytes. Before any frame
    is stylised the worker counts the frames: a video over max_video_frames, or over max_video_frame_pixels
    (frames x pixels, a frame counted at least video_pixel_floor), fails with the limit and its numbers. Videos
    have a lane of their own in each stylise worker (images never wait behind one), one video at a time, in
    turns by owner: it stays queued while others' take their turn. POST /v1/stylizations/{id}/cancel stops it."""
    options = stylize_options(style, mix, strength, colors)
    return stylization_public(request_stylize_video(services.stores, services.queue, key, job_id,
                                                    iter(lambda: file.file.read(1 << 20), b""), file.filename or "",
                                                    services.settings, options))


def stylization_public(req: StylizeRecord) -> StylizationPublic:
    outputs = [{"index": i, "width": w, "height": h, "url": f"/v1/stylizations/{req.id}/outputs/{i}"}
               for i, (w, h) in enumerate(req.sizes)]
    for o in outputs if req.kind == "video" else []:
        o.update(req.video)
    return StylizationPublic(id=req.id, job_id=req.job_id, state=req.state, error=req.error, outputs=outputs,
                             kind=req.kind, options=req.options, progress=req.progress or None,
                             flicker=req.video.get("flicker"),
                             cancel_requested=not req.final and req.cancel_requested_at is not None)


@router.get("/stylizations/{request_id}", response_model=StylizationPublic)
def get_stylization(request_id: str, services: ServicesDep, key: CurrentKey) -> StylizationPublic:
    """A stylisation request: its state and, when done, its output images."""
    return stylization_public(services.stores.stylizations.get(request_id, key.scope))


@router.post("/stylizations/{request_id}/cancel", status_code=202, response_model=StylizationPublic)
def cancel_stylization(request_id: str, services: ServicesDep, key: CurrentKey) -> StylizationPublic:
    """Stop a stylisation. A queued one is cancelled at once; a running one is stopped at its worker's next
    heartbeat and ends cancelled: a video's stylise server is killed (and a fresh one started for the next
    video), an image request's answer is dropped (its server goes on with the others' images). 409 if it has
    already ended; another owner's is a 404."""
    return stylization_public(services.stores.stylizations.request_cancel(request_id, key.scope))


@router.get("/stylizations/{request_id}/outputs/{index}", responses={200: {"content": {"image/png": {}}}})
def get_stylized_image(request_id: str, index: int, services: ServicesDep, key: CurrentKey,
                       presign: bool = False) -> Response:
    """One stylised image (PNG, the input's size), or a stylised video's mp4."""
    req = services.stores.stylizations.get(request_id, key.scope)
    if not 0 <= index < len(req.outputs):
        raise NotFound(f"stylization {request_id} has no output {index} (it is {req.state.value})")
    video = req.kind == "video"
    return _object(services, req.outputs[index], "video/mp4" if video else "image/png", presign=presign,
                   filename=f"{request_id}-{index}.{'mp4' if video else 'png'}")
