"""What handlers need, as Annotated aliases so signatures read like English."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from service.core.jobs import JobStore
from service.core.queue import JobQueue
from service.core.settings import Settings
from service.core.storage import ObjectStore


@dataclass
class Services:
    settings: Settings
    store: ObjectStore
    jobs: JobStore
    queue: JobQueue


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]
