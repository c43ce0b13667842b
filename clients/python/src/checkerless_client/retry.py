"""When a request is sent again, and how long the client waits first.

Retried: answers 429 (a quota: nothing was made), 502, 503 and 504 (nothing was kept: the
service keeps no 5xx answer for an Idempotency-Key), and requests that got no answer. A POST
always carries an Idempotency-Key, so sending it again gives the first answer if the first
attempt did reach the service; a DELETE is sent again only if it never left (the connection
was refused). A Retry-After is waited as asked, unless it is longer than `max_retry_after_s`
(the storage quota's is an hour): then the error is raised at once, carrying it."""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx

# Errors after which the request may have reached the service (or not): safe to repeat only
# with an Idempotency-Key, or for a request that changes nothing.
_MAYBE_SENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry. `attempts` counts the first try; attempts=1: never retry."""

    attempts: int = 5
    backoff_s: float = 0.25  # the first wait where the answer names none; it doubles each time
    max_backoff_s: float = 8.0
    max_retry_after_s: float = 120.0
    statuses: frozenset[int] = frozenset({429, 502, 503, 504})

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts counts the first try: at least 1")

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt `attempt` (1, 2, ...): exponential, with jitter so that
        clients that failed together do not come back together."""
        ceiling = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def after_status(self, attempt: int, status: int, retry_after: float | None) -> float | None:
        """Seconds to wait before sending again after this answer; None: do not."""
        if attempt >= self.attempts or status not in self.statuses:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after_s else None
        return self.backoff(attempt)

    def after_error(self, attempt: int, error: Exception, *, repeatable: bool) -> float | None:
        """Seconds to wait before sending again after no answer; None: do not. `repeatable`:
        the request may safely be applied twice (a GET, a POST with an Idempotency-Key)."""
        if attempt >= self.attempts:
            return None
        if isinstance(error, _NEVER_SENT) or (repeatable and isinstance(error, _MAYBE_SENT)):
            return self.backoff(attempt)
        return None


NO_RETRY = RetryPolicy(attempts=1)


@dataclass(frozen=True)
class RetryEvent:
    """What `on_retry` is told before each wait: the request, the attempt that failed (1, 2,
    ...), why (an HTTP status or the error) and how long the client now waits."""

    method: str
    path: str
    attempt: int
    wait_s: float
    status: int | None = None
    error: Exception | None = None

    @property
    def reason(self) -> str:
        return f"HTTP {self.status}" if self.status is not None else f"{type(self.error).__name__}: {self.error}"


def retry_after(value: str | None, *, now: float) -> float | None:
    """A Retry-After header in seconds: delta-seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None
