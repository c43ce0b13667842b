"""What handlers need, as Annotated aliases so signatures read like English."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from celery import Celery
from fastapi import Depends, Request

from service.config import Settings
from service.jobs import JobStore
from service.storage import ObjectStore


@dataclass
class Services:
    settings: Settings
    store: ObjectStore
    jobs: JobStore
    celery: Celery


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]
