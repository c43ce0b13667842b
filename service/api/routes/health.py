from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from service.api.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> dict:
    """Alive: the API process answers."""
    return {"status": "ok"}


@router.get("/ready")
def ready(request: Request, services: ServicesDep) -> JSONResponse:
    """Ready: the broker and the object store can be reached, and under `checkerless serve` its
    workers run (503 with the reason if not; a worker restarted says so)."""
    checks = {}
    try:
        services.store.ping()
        checks["store"] = "ok"
    except Exception as e:  # noqa: BLE001 - any failure means not ready; say which
        checks["store"] = f"unreachable: {e}"
    try:
        services.queue.ping()
        checks["broker"] = "ok"
    except Exception as e:  # noqa: BLE001
        checks["broker"] = f"unreachable: {e}"
    embedded = getattr(request.app.state, "embedded_workers", None)
    if embedded is not None:
        checks.update(embedded.status())
    ok = all(v.startswith("ok") for v in checks.values())
    return JSONResponse(status_code=200 if ok else 503, content={"status": "ready" if ok else "not ready", **checks})


@router.get("/decoders")
def decoders() -> list[dict]:
    """The decoder names: what each upsampling layer does, how its kernels overlap, and which is the default."""
    from models.config import DEFAULTS
    from models.vocabulary import DECODER_INFO

    return [{"name": d.name, "layer": d.layer, "overlap": d.overlap, "default": d.name == DEFAULTS.decoder}
            for d in DECODER_INFO.values()]


@router.get("/downsamples")
def downsamples() -> list[dict]:
    """The encoder's downsampling names (a request's `downsample`): what each layer does, and where it comes from."""
    from models.vocabulary import DOWNSAMPLE_INFO

    return [{"name": d.name, "layer": d.layer, "reference": d.reference} for d in DOWNSAMPLE_INFO.values()]
