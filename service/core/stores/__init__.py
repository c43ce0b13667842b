"""Every record the service keeps: one record store (record_store.py: compare-and-set, the list
index, active markers) and one small store per resource on it. `Stores` builds them in the
order they depend on each other:

    stylizations <- jobs (+ announcements) <- experiments, styles, content sets
"""

from __future__ import annotations

from dataclasses import dataclass

from service.core.content_sets import ContentSetRecord
from service.core.keys import Keys
from service.core.records import StylizeRecord
from service.core.storage import ObjectStore
from service.core.stores.announcements import Announcements
from service.core.stores.content_sets import ContentSets
from service.core.stores.experiments import Experiments
from service.core.stores.jobs import Jobs
from service.core.stores.record_store import RecordStore
from service.core.stores.styles import Styles
from service.core.stores.stylizations import Stylizations

__all__ = ["Everyone", "Stores"]


class Stores:
    def __init__(self, store: ObjectStore):
        self.store = store
        self.records = RecordStore(store)
        self.announcements = Announcements(self.records)
        self.stylizations = Stylizations(self.records)
        self.jobs = Jobs(self.records, self.stylizations, self.announcements)
        self.experiments = Experiments(self.records, self.jobs)
        self.styles = Styles(self.records, self.jobs)
        self.content_sets = ContentSets(self.records, self.jobs)

    def storage_used(self, owner: str, every: Everyone | None = None) -> int:
        """Bytes an owner's styles, content sets, jobs (checkpoints, outputs) and stylisations take
        (every object listed: service/core/usage.py keeps the result). `every`: the styles,
        content sets and stylisations of everyone, read once by a caller that measures many
        owners (they have no index by owner; jobs do)."""
        usage, every = self.store.usage, every or self.everyone()
        total = sum(usage(Keys.style_prefix(m["id"])) for m in every.styles if m.get("owner", "") == owner)
        total += sum(usage(Keys.content_set_prefix(r.id)) for r in every.content_sets if r.owner == owner)
        total += sum(usage(Keys.job_prefix(r.id)) for r in self.jobs.all(owner))
        return total + sum(usage(Keys.stylize_prefix(r.id)) for r in every.stylizations if r.owner == owner)

    def everyone(self) -> Everyone:
        """Every style's description, content set and stylisation (every record read)."""
        return Everyone(self.styles.list(), self.content_sets.list(), self.stylizations.all())


@dataclass(frozen=True)
class Everyone:
    """What has no index by owner, read once for many owners' storage (Stores.storage_used)."""

    styles: list[dict]
    content_sets: list[ContentSetRecord]
    stylizations: list[StylizeRecord]
