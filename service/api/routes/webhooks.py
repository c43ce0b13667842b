from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import CurrentKey, ServicesDep
from service.core.webhooks import DELIVERY, SIGNATURE, owner_secret

router = APIRouter(tags=["webhooks"])


@router.get("/webhook-secret")
def webhook_secret(services: ServicesDep, key: CurrentKey) -> dict:
    """Your webhook signing secret: each delivery carries `Checkerless-Signature: t=<unix time>,
    v1=<hex HMAC-SHA256 of "<t>.<body>" under this secret>` and `Checkerless-Delivery: <event id>`."""
    return {"secret": owner_secret(services.store, key.owner), "signature_header": SIGNATURE,
            "delivery_header": DELIVERY}
