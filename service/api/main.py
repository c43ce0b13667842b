"""Builds the HTTP app; nothing else. `uvicorn service.api.main:create_app --factory`."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from service.api import errors
from service.api.deps import Services
from service.api.gate import Authenticate, BodyLimit
from service.api.idempotency import Idempotency
from service.api.metrics import Metrics
from service.api.routes import builtin_styles, content_sets, experiments, health, jobs, uploads, webhooks
from service.core.auth import KeyStore
from service.core.stores import Stores
from service.core.queue import JobQueue, make_celery
from service.core.settings import Settings
from service.core.storage import ObjectStore, StoreError, open_store

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, store: ObjectStore | None = None,
               queue: JobQueue | None = None) -> FastAPI:
    settings = settings or Settings()
    store = store or open_store(settings)
    app = FastAPI(title="checkerless", version="0.1.0",
                  description="Train style-transfer networks, stylise images, measure checkerboard artifacts.")
    services = Services(settings=settings, store=store, stores=Stores(store),
                        queue=queue or JobQueue(make_celery(settings)), keys=KeyStore(store))
    app.state.services = services
    try:  # records stored before the list index had one: indexed once (else at the first list)
        services.stores.records.ensure_index()
    except StoreError as e:
        log.warning("the list index is not checked yet (the first list will): %s", e)
    app.state.metrics = metrics = Metrics(services.stores, services.queue)
    app.add_route("/metrics", metrics.endpoint, include_in_schema=False)
    # Outermost last: the key, then the body's size, are settled before anything reads a body.
    app.add_middleware(Idempotency, store=store, keep_s=settings.idempotency_keep_s)
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes,
                       limits={"/stylize-video": settings.max_video_bytes,
                               "/content-sets/archive": settings.max_archive_bytes},
                       on_reject=lambda: metrics.refused.labels("body_too_large").inc())
    app.add_middleware(Authenticate, keys=services.keys)
    errors.install(app)
    for router in (health.router, builtin_styles.router, uploads.router, content_sets.router, jobs.router,
                   experiments.router, webhooks.router):
        app.include_router(router, prefix="/v1")
    # onnxruntime-web for the live page (live.html), from the npm package scripts/setup.sh
    # installs: only its runtime files, registered before the /ui mount so they win.
    app.add_api_route("/ui/vendor/ort/{name}", vendor_ort, include_in_schema=False)
    # The web pages: static files that call the API; nothing to build.
    app.mount("/ui", Pages(directory=WEB, html=True), name="ui")
    app.add_api_route("/", lambda: RedirectResponse("/ui/"), include_in_schema=False)
    return app


WEB = Path(__file__).parent / "web"
ORT_DIST = WEB / "node_modules" / "onnxruntime-web" / "dist"
# What live.js loads: the WASM build (no WebGPU in the browser) or the WebGPU one (which also
# runs WASM), and the WebAssembly each of them fetches. Nothing else of node_modules is served.
ORT_FILES = {"ort.wasm.min.js": "text/javascript", "ort.webgpu.min.js": "text/javascript",
             "ort-wasm-simd-threaded.mjs": "text/javascript", "ort-wasm-simd-threaded.wasm": "application/wasm",
             "ort-wasm-simd-threaded.asyncify.mjs": "text/javascript",
             "ort-wasm-simd-threaded.asyncify.wasm": "application/wasm"}


def vendor_ort(name: str):
    """One of ORT_FILES; 404 with what to run when the npm package is not installed (the API
    runs without it; only the live page needs it, and it says so)."""
    if name not in ORT_FILES:
        return PlainTextResponse(f"not served: {name}", status_code=404)
    path = ORT_DIST / name
    if not path.is_file():
        return PlainTextResponse(f"{name}: onnxruntime-web is not installed; run scripts/setup.sh "
                                 "(npm ci in service/api/web)", status_code=404)
    return FileResponse(path, media_type=ORT_FILES[name], headers={"Cache-Control": "max-age=3600"})


class Pages(StaticFiles):
    """The web folder, less its node_modules (served only through vendor_ort). live.html is
    cross-origin isolated (COOP + COEP): WebAssembly threads need SharedArrayBuffer, which
    browsers give only to such pages; everything it loads is from this origin."""

    async def get_response(self, path: str, scope):
        if path.replace("\\", "/").split("/")[0] == "node_modules":
            raise HTTPException(status_code=404)
        response = await super().get_response(path, scope)
        if path == "live.html":
            response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
            response.headers["Cross-Origin-Embedder-Policy"] = "require-corp"
        return response
