"""The record store: JSON records in the object store, read, created and changed by
compare-and-set (service/core/cas.py), read a page at a time through the list index. The
per-resource stores beside this module (jobs, stylisations, experiments, content sets,
styles) are written on it and know nothing of how the store is reached."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from pydantic import BaseModel

from service.core import cas
from service.core.errors import NotFound
from service.core.keys import Keys
from service.core.records import ExperimentRecord, JobRecord
from service.core.storage import ObjectNotFound, ObjectStore

log = logging.getLogger(__name__)
R = TypeVar("R", bound=BaseModel)
JOBS, STYLIZATIONS = "jobs", "stylizations"  # the kinds of active markers
EXPERIMENTS = "experiments"  # with JOBS, the kinds of the list index
READERS = 16  # records of one page read at once (S3 answers each GET in milliseconds)
WALK_PAGE = 1000  # index entries per listing when every record is wanted


class RecordStore:
    def __init__(self, store: ObjectStore):
        self.store = store
        self._index_ready = False

    # --- one record -----------------------------------------------------------------------

    def read(self, key: str, model: type[R], what: str) -> tuple[R, str]:
        """The record and its version; NotFound ("no <what>") if there is none."""
        return cas.read(self.store, key, model, what)

    def update(self, key: str, model: type[R], change: Callable[[R], None], what: str) -> R:
        """The record after `change`, written only if nobody wrote it meanwhile (else again)."""
        return cas.update(self.store, key, model, change, what)

    def create(self, key: str, record: BaseModel) -> None:
        """VersionConflict if the record exists already."""
        cas.create(self.store, key, record)

    # --- many records ---------------------------------------------------------------------

    def read_many(self, keys: list[str], model: type[R]) -> list[R]:
        """These records, in this order, a few at a time; one deleted meanwhile is left out."""
        def read(key: str) -> R | None:
            try:
                return model.model_validate_json(self.store.get_bytes(key))
            except ObjectNotFound:
                return None

        if len(keys) <= 1:
            found = [read(k) for k in keys]
        else:
            with ThreadPoolExecutor(max_workers=min(READERS, len(keys))) as pool:
                found = list(pool.map(read, keys))
        return [r for r in found if r is not None]

    def scan(self, prefix: str, name: str, model: type[R]) -> list[R]:
        """Every record named `name` under `prefix`, newest first: every key listed, every
        record read (for the kinds that have no list index)."""
        records = self.read_many([k for k in self.store.list(prefix) if k.endswith(f"/{name}")], model)
        return sorted(records, key=lambda r: r.created_at, reverse=True)

    # --- the list index -------------------------------------------------------------------
    # One empty marker per job and experiment (service/core/keys.py, Keys.index_*), named so
    # that key order is newest first: a page of a list is one short listing of the index and
    # then only that page's records. Entries are written before the record and removed after
    # it, so a record is never missing from the index; an entry whose record is gone (deleted
    # meanwhile, or a create or delete that stopped halfway) is skipped.

    def index(self, kind: str, record: JobRecord | ExperimentRecord) -> None:
        for entry in Keys.index_entries(kind, record.created_at, record.id, record.owner):
            self.store.put_bytes(entry, b"")

    def unindex(self, kind: str, record: JobRecord | ExperimentRecord) -> None:
        for entry in Keys.index_entries(kind, record.created_at, record.id, record.owner):
            self.store.delete(entry)

    def page(self, kind: str, record_key: Callable[[str], str], model: type[R], scope: str | None, limit: int,
             cursor: str | None) -> tuple[list[R], str | None]:
        """One page of `kind`'s records (of the owner `scope`, if given), newest first, and the
        cursor of the next page (None: this is the last)."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.ensure_index()
        after = Keys.index_after(kind, scope, cursor) if cursor is not None else None
        entries = self.store.list_page(Keys.index_prefix(kind, scope), after=after, limit=limit + 1)
        more, entries = len(entries) > limit, entries[:limit]
        records = self.read_many([record_key(Keys.index_item_id(e)) for e in entries], model)
        return ([r for r in records if scope is None or r.owner == scope],
                Keys.index_cursor(entries[-1]) if more else None)

    def walk(self, kind: str, record_key: Callable[[str], str], model: type[R], scope: str | None) -> Iterator[R]:
        """Every record of `kind`, page by page, newest first."""
        cursor: str | None = None
        while True:
            records, cursor = self.page(kind, record_key, model, scope, WALK_PAGE, cursor)
            yield from records
            if cursor is None:
                return

    def ensure_index(self) -> None:
        """Index the records written before there was an index, once (when the index's version
        marker is missing); then nothing but one existence check per process."""
        if self._index_ready:
            return
        if not self.store.exists(Keys.index_version()):
            counts = self.rebuild_index()
            log.info("list index rebuilt: %s entries added", counts)
        self._index_ready = True

    def rebuild_index(self) -> dict[str, int]:
        """Every job's and experiment's index entries, written where missing (every record is
        read: a one-shot migration); then the version marker. Safe to run again, and
        beside the API's own writes (an entry for a record deleted meanwhile is skipped)."""
        added = {}
        for kind, prefix, name, model in ((JOBS, "jobs", "job.json", JobRecord),
                                          (EXPERIMENTS, "experiments", "experiment.json", ExperimentRecord)):
            have = set(self.store.list(Keys.index_root(kind)))
            missing = []
            for record in self.scan(prefix, name, model):
                try:
                    missing += [e for e in Keys.index_entries(kind, record.created_at, record.id, record.owner)
                                if e not in have]
                except NotFound:  # an id (or owner) we could not have made: not listable
                    log.warning("not indexed: %s %r of owner %r", kind, record.id, record.owner)
            for entry in missing:
                self.store.put_bytes(entry, b"")
            added[kind] = len(missing)
        self.store.put_bytes(Keys.index_version(), b"1\n", content_type="text/plain")
        self._index_ready = True
        return added

    # --- active markers -------------------------------------------------------------------
    # An empty object per unfinished job or stylisation (Keys.active): the sweepers list these
    # instead of every record.

    def mark_active(self, kind: str, record_id: str) -> None:
        self.store.put_bytes(Keys.active(kind, record_id), b"")

    def unmark_active(self, kind: str, record_id: str) -> None:
        self.store.delete(Keys.active(kind, record_id))

    def active_ids(self, kind: str) -> list[str]:
        return [k.rsplit("/", 1)[1] for k in self.store.list(Keys.active_prefix(kind))]


def visible(record: R, scope: str | None, missing: str) -> R:
    """Another owner's record is as missing as one that never was: a 404, never a 403."""
    if scope is not None and record.owner != scope:
        raise NotFound(missing)
    return record
