"""Domain errors; the API maps them to HTTP statuses in one table (service/api/errors.py)."""

from __future__ import annotations

ID_SHOWN = 40  # an id echoed in a message: ours are 32 hex digits, and anything longer is cut


def clip(text: str, limit: int) -> str:
    """`text`, cut to `limit` characters (saying how long it was): what an answer echoes of a
    request stays small however large the request."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def shown_id(value: str) -> str:
    """An id as a message quotes it, cut to ID_SHOWN characters."""
    return repr(value) if len(value) <= ID_SHOWN else f"{value[:ID_SHOWN]!r}... ({len(value)} characters)"


class NotFound(LookupError):
    """No such job, style, content set, experiment or stylisation; the message names it."""


class BadRequest(Exception):
    """A request the schema cannot refuse but we must, e.g. a list cursor this server never gave."""


class Unauthorized(Exception):
    """No API key, or one that is unknown or revoked."""


class Forbidden(Exception):
    """The key is known but may not do this (an operator's action), or the store may not read it."""


class UnsupportedMedia(Exception):
    """A body of a kind this route does not take (e.g. an archive that is no tar, tar.gz or zip)."""


class Conflict(Exception):
    """The request is valid but not in this state (e.g. stylising with an unfinished job)."""


class TooLarge(Exception):
    """What a request would unpack to is over a limit (its body alone may be small)."""


class QuotaExceeded(Exception):
    """An owner's limit is reached; the message says which, `retry_after_s` when to try again."""

    def __init__(self, message: str, *, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(Exception):
    """A part we depend on (broker, store) cannot be reached."""


class InvalidTransition(Conflict):
    """A record was asked to move to a state its state machine does not allow from here."""


class LostLease(Exception):
    """A supervisor's attempt is no longer the job's current one (requeued, cancelled,
    deleted): it must stop its child and write nothing more."""
