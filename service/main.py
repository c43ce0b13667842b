"""Builds the HTTP app; nothing else. `uvicorn service.main:create_app --factory`."""

from __future__ import annotations

from fastapi import FastAPI

from service import errors
from service.config import Settings
from service.deps import Services
from service.jobs import JobStore
from service.routes import health, jobs, uploads
from service.storage import open_store
from service.uploads import BodyLimit
from workers.celery_app import make_celery


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    store = open_store(settings)
    app = FastAPI(title="checkerless", version="0.1.0",
                  description="Train style-transfer networks, stylise images, measure checkerboard artifacts.")
    app.state.services = Services(settings=settings, store=store, jobs=JobStore(store), celery=make_celery(settings))
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes)
    errors.install(app)
    for router in (health.router, uploads.router, jobs.router):
        app.include_router(router, prefix="/v1")
    return app
