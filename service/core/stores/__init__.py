"""Every record the service keeps: one record store (record_store.py: compare-and-set, the list
index, active markers) and one small store per resource on it. `Stores` builds them in the
order they depend on each other:

    stylizations <- jobs (+ announcements) <- experiments, styles, content sets
"""

from __future__ import annotations

from service.core.keys import Keys
from service.core.storage import ObjectStore
from service.core.stores.announcements import Announcements
from service.core.stores.content_sets import ContentSets
from service.core.stores.experiments import Experiments
from service.core.stores.jobs import Jobs
from service.core.stores.record_store import RecordStore
from service.core.stores.styles import Styles
from service.core.stores.stylizations import Stylizations

__all__ = ["Stores"]


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

    def storage_used(self, owner: str, stylizations: list | None = None) -> int:
        """Bytes an owner's styles, content sets, jobs (checkpoints, outputs) and stylisations take
        (every object listed: service/core/usage.py keeps the result). `stylizations`: every
        stylisation record, read once by a caller that measures many owners (they have no
        index by owner)."""
        usage = self.store.usage
        stylizations = self.stylizations.all() if stylizations is None else stylizations
        total = sum(usage(Keys.style_prefix(m["id"])) for m in self.styles.list(owner))
        total += sum(usage(Keys.content_set_prefix(r.id)) for r in self.content_sets.list(owner))
        total += sum(usage(Keys.job_prefix(r.id)) for r in self.jobs.all(owner))
        return total + sum(usage(Keys.stylize_prefix(r.id)) for r in stylizations if r.owner == owner)
