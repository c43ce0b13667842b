"""What unfinished jobs use may not be deleted: the styles and content sets stores ask here."""

from __future__ import annotations

from collections.abc import Callable

from service.core.errors import Conflict
from service.core.records import JobRecord
from service.core.stores.jobs import Jobs


def refuse_if_used(jobs: Jobs, what: str, item_id: str, uses: Callable[[JobRecord], bool]) -> None:
    """Conflict (409) naming the unfinished jobs that use the item, if any."""
    users = [j.id for j in jobs.all() if uses(j) and not j.final]
    if users:
        raise Conflict(f"{what} {item_id} is used by unfinished job(s) {', '.join(users)}; "
                       "cancel them or wait for them to end")
