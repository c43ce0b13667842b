"""Webhooks: a job (or an experiment, for each of its jobs) may name a URL; each change of
its state is POSTed there as JSON, signed with HMAC-SHA256 under a secret of its owner's.

- The event is written into the job's record by the compare-and-set that changes its state,
  so no crash can keep the one without the other; a marker written just before names it.
  Then it is moved to an outbox in the store (service/core/stores/announcements.py), and a loop in every
  worker's main process (workers/tasks.py) moves any a crash left behind (found by their
  markers) and delivers the outbox: each delivery claimed with a compare-and-set so one
  sender sends it, retried with exponential backoff, given up after `webhook_attempts` (kept
  under webhooks/failed/). A crash can make a delivery repeat, never lose one: receivers
  drop duplicates by the event's id.
- Headers: `Checkerless-Delivery` (the event's id: receivers drop duplicates by it) and
  `Checkerless-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">` (the time is
  signed, so a receiver can refuse old replays).
- URLs must be http(s) to public addresses: private, loopback, link-local and reserved ranges
  are refused when the job is submitted and again before each delivery (DNS may change),
  unless the operator allows them (`webhook_allow_private`); redirects are not followed.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from service.core.keys import Keys, new_id
from service.core.records import now
from service.core.storage import ObjectNotFound, ObjectStore, VersionConflict

log = logging.getLogger(__name__)
SIGNATURE, DELIVERY = "Checkerless-Signature", "Checkerless-Delivery"


class WebhookRefused(ValueError):
    """The URL cannot be a webhook (scheme, or an address that is not public)."""


def check_url(url: str, *, allow_private: bool) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookRefused(f"webhook_url must be an http or https URL, not {url!r}")
    if allow_private:
        return url
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)}
    except (socket.gaierror, UnicodeError):
        raise WebhookRefused(f"webhook_url host {parts.hostname!r} does not resolve") from None
    for address in sorted(addresses):
        ip = ipaddress.ip_address(address.split("%")[0])
        for inner in (ip, *_embedded_ipv4(ip)):
            if not inner.is_global or inner.is_multicast:
                shown = str(ip) if inner == ip else f"{ip} (IPv4 {inner})"
                raise WebhookRefused(f"webhook_url {parts.hostname!r} resolves to {shown}, which is not a public "
                                     "address; the operator may allow private ones (CHECKERLESS_WEBHOOK_ALLOW_PRIVATE)")
    return url


# IPv6 prefixes that carry an IPv4 address in their last 32 bits and that a host or a gateway
# may route to it: IPv4-compatible (::/96), IPv4-translated (::ffff:0:0:0/96), NAT64's
# well-known and local-use prefixes (RFC 6052, RFC 8215). Python calls them global.
_IPV4_IN_LOW_BITS = tuple(ipaddress.ip_network(n) for n in ("::/96", "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48"))


def _embedded_ipv4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to (6to4, Teredo, mapped and the prefixes
    above); each must be public too."""
    if ip.version == 4:
        return []
    found = [a for a in (ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())) if a is not None]
    if any(ip in net for net in _IPV4_IN_LOW_BITS):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, *, tolerance_s: int = 300) -> bool:
    """What a receiver does: check the signature and that it is recent."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), header)


def owner_secret(store: ObjectStore, owner: str) -> str:
    """The owner's signing secret, made on first use (one winner if two make it at once)."""
    key = Keys.webhook_secret(owner)
    try:
        return json.loads(store.get_bytes(key))["secret"]
    except ObjectNotFound:
        pass
    try:
        store.put_if(key, json.dumps({"secret": "whsec_" + secrets.token_urlsafe(32)}).encode(), version=None,
                     content_type="application/json")
    except VersionConflict:
        pass
    return json.loads(store.get_bytes(key))["secret"]


def job_event(r) -> dict:
    """The event of a job's state change (r: a JobRecord), with its id and time: written into
    the record by the same compare-and-set that makes the change (service/core/stores/announcements.py)."""
    return {"type": "job.state", "id": new_id(), "created_ns": time.time_ns(), "created_at": now().isoformat(),
            "job_id": r.id, "experiment_id": r.experiment_id, "state": r.state.value, "step": r.step,
            "steps": r.steps, "attempts": r.attempts, "error": r.error}


def enqueue(store: ObjectStore, *, url: str, owner: str, event: dict) -> None:
    """An event into the outbox, once: its key is made from its id, and a second enqueue of the
    same event (a recovery after a crash) leaves the first, and its delivery state, alone."""
    delivery = {"id": event["id"], "url": url, "owner": owner, "attempts": 0, "next_at": 0.0, "claimed_until": 0.0,
                "event": {k: v for k, v in event.items() if k != "created_ns"}}
    try:
        store.put_if(Keys.webhook_outbox(event["created_ns"], event["id"]), json.dumps(delivery).encode(),
                     version=None, content_type="application/json")
    except VersionConflict:
        pass


def deliver_due(store: ObjectStore, *, allow_private: bool, attempts: int, retry_base_s: float,
                timeout_s: float = 10.0, clock: Callable[[], float] = time.time) -> dict[str, int]:
    """Send every due delivery once; returns counts by result (delivered, retry, failed).
    `clock` schedules retries and claims (the signature's time is always the real one)."""
    import httpx

    results = {"delivered": 0, "retry": 0, "failed": 0}
    for key in store.list(Keys.webhook_outbox_prefix()):
        try:
            data, version = store.get_versioned(key)
        except ObjectNotFound:
            continue
        d = json.loads(data)
        t = clock()
        if d["next_at"] > t or d["claimed_until"] > t:
            continue
        d["claimed_until"] = t + timeout_s + 5  # ours while we try; another sender skips it
        try:
            version = store.put_if(key, json.dumps(d).encode(), version=version, content_type="application/json")
        except (VersionConflict, ObjectNotFound):
            continue
        body = json.dumps(d["event"], sort_keys=True).encode()
        error = None
        try:
            check_url(d["url"], allow_private=allow_private)
            headers = {"content-type": "application/json", DELIVERY: d["id"],
                       SIGNATURE: sign(owner_secret(store, d["owner"]), int(time.time()), body)}
            r = httpx.post(d["url"], content=body, headers=headers, timeout=timeout_s, follow_redirects=False)
            if not 200 <= r.status_code < 300:
                error = f"HTTP {r.status_code}"
        except WebhookRefused as e:
            error = str(e)
        except httpx.HTTPError as e:
            error = f"{type(e).__name__}: {e}"
        if error is None:
            store.delete(key)
            results["delivered"] += 1
            continue
        d["attempts"] += 1
        d["last_error"], d["claimed_until"] = error, 0.0
        if d["attempts"] >= attempts:
            store.put_bytes(Keys.webhook_failed(d["id"]), json.dumps(d).encode(), content_type="application/json")
            store.delete(key)
            results["failed"] += 1
            log.warning("webhook %s to %s given up after %d attempts: %s", d["id"], d["url"], d["attempts"], error)
        else:
            d["next_at"] = clock() + retry_base_s * 2 ** (d["attempts"] - 1)
            store.put_bytes(key, json.dumps(d).encode(), content_type="application/json")
            results["retry"] += 1
    if any(results.values()):
        _count(store, results)
    return results


def _count(store: ObjectStore, results: dict[str, int]) -> None:
    """Running totals of delivery results, for /metrics (a compare-and-set: senders race)."""
    key = Keys.webhook_stats()
    for _ in range(20):
        try:
            data, version = store.get_versioned(key)
            totals = json.loads(data)
        except ObjectNotFound:
            version, totals = None, {}
        for result, n in results.items():
            totals[result] = totals.get(result, 0) + n
        try:
            store.put_if(key, json.dumps(totals).encode(), version=version, content_type="application/json")
            return
        except VersionConflict:
            continue
    log.warning("could not count webhook results %s", results)


def delivery_totals(store: ObjectStore) -> dict[str, int]:
    try:
        return json.loads(store.get_bytes(Keys.webhook_stats()))
    except ObjectNotFound:
        return {}
