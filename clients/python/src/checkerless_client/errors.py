"""What the client raises. Every error is a CheckerlessError, so one `except` catches them all."""

from __future__ import annotations

from typing import Any


class CheckerlessError(Exception):
    """Anything the client raises on purpose."""


class ApiError(CheckerlessError):
    """The API answered with an error status (4xx, or 5xx once retries were spent).

    `status` is the HTTP status and `detail` the API's `detail` (what to fix, in one sentence);
    `errors` lists a validation error's problems (field, message), and `retry_after` is the
    answer's Retry-After in seconds, where it had one (429, 503)."""

    def __init__(self, status: int, detail: str, *, errors: list[dict[str, Any]] | None = None,
                 retry_after: float | None = None, method: str = "", path: str = ""):
        super().__init__(f"{detail} (HTTP {status})")
        self.status = status
        self.detail = detail
        self.errors = errors or []
        self.retry_after = retry_after
        self.method = method
        self.path = path


class ApiUnreachable(CheckerlessError):
    """No answer from the API (refused, reset, timed out) once retries were spent."""

    def __init__(self, url: str, error: Exception):
        super().__init__(f"cannot reach the API at {url} ({type(error).__name__}); is `checkerless serve` running?")
        self.url = url
        self.error = error


class WaitTimeout(CheckerlessError, TimeoutError):
    """wait(), wait_stylization() or wait_content_set() ran past its timeout; `last` is the
    last state read."""

    def __init__(self, what: str, timeout_s: float, last: Any):
        super().__init__(f"{what} did not finish within {timeout_s:g} s (last state: {getattr(last, 'state', '?')})")
        self.last = last


class StylizationFailed(CheckerlessError):
    """A stylisation ended failed or cancelled; `stylization` is its final state."""

    def __init__(self, stylization: Any):
        super().__init__(f"stylization {stylization.id} {stylization.state}: {stylization.error}")
        self.stylization = stylization
