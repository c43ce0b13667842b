"""Checking a webhook delivery's signature, as a receiver does. The scheme is the service's
(service/core/webhooks.py), written again here so that the client needs nothing of the
service: `Checkerless-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">` under
the owner's secret (Client.webhook_secret())."""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Checkerless-Signature"
DELIVERY_HEADER = "Checkerless-Delivery"  # the event's id: drop deliveries already seen


def verify_webhook(body: bytes | str, header: str | None, secret: str, *, tolerance_s: float = 300,
                   now: float | None = None) -> bool:
    """True if `header` (the Checkerless-Signature value) signs `body` (the request's bytes,
    exactly as received) under `secret`, and was made within `tolerance_s` seconds of `now`
    (default: the clock), so an old delivery replayed is refused."""
    if not header or not secret:
        return False
    if isinstance(body, str):
        body = body.encode()
    fields = dict(part.strip().split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
        given = fields["v1"]
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given)
