"""Content set records (service/core/content_sets.py has the record and its manifest): the API
creates and deletes them, the validating worker moves their progress and state, always by
compare-and-set. A set uploaded before records had states has a plain dict at Keys.content_meta:
it reads as ready."""

from __future__ import annotations

import json
from collections.abc import Callable

from service.core import usage
from service.core.content_sets import ContentSetRecord, ContentSetState, Manifest
from service.core.errors import Conflict, NotFound
from service.core.keys import Keys, check_id
from service.core.records import now
from service.core.storage import ObjectNotFound
from service.core.stores.in_use import refuse_if_used
from service.core.stores.jobs import Jobs
from service.core.stores.record_store import RecordStore, visible


class ContentSets:
    def __init__(self, records: RecordStore, jobs: Jobs):
        self.records = records
        self.store = records.store
        self.jobs = jobs

    @staticmethod
    def _key(set_id: str) -> str:
        return Keys.content_meta(check_id(set_id, "content set"))

    def create(self, record: ContentSetRecord) -> ContentSetRecord:
        self.records.create(self._key(record.id), record)
        return record

    def get(self, set_id: str, scope: str | None = None) -> ContentSetRecord:
        """A content set's record; with `scope`, only that owner's (another's is as missing)."""
        try:
            data = self.store.get_bytes(self._key(set_id))
        except ObjectNotFound:
            raise NotFound(f"no content set {set_id!r}") from None
        return visible(_content_set(set_id, data), scope, f"no content set {set_id!r}")

    def update(self, set_id: str, change: Callable[[ContentSetRecord], None]) -> ContentSetRecord:
        """Apply `change` to the set's record as a compare-and-set (raise Skip in it to leave the
        record as it is). NotFound once the set is deleted: a worker validating it must then
        stop and remove what it wrote under Keys.content_set_prefix."""
        def changed(r: ContentSetRecord) -> None:
            change(r)
            r.updated_at = now()

        return self.records.update(self._key(set_id), ContentSetRecord, changed, f"content set {set_id!r}")

    def ready(self, set_id: str, scope: str | None = None) -> ContentSetRecord:
        """A set jobs may train on: Conflict (409) while it is validating or once it failed."""
        record = self.get(set_id, scope)
        if record.state != ContentSetState.ready:
            raise Conflict(record.describe_not_ready())
        return record

    def put_manifest(self, set_id: str, manifest: Manifest) -> None:
        self.store.put_bytes(Keys.content_manifest(check_id(set_id, "content set")),
                             manifest.model_dump_json().encode(), content_type="application/json")

    def get_manifest(self, set_id: str) -> Manifest:
        try:
            return Manifest.model_validate_json(self.store.get_bytes(Keys.content_manifest(check_id(set_id, "content set"))))
        except ObjectNotFound:
            raise NotFound(f"content set {set_id!r} has no manifest") from None

    def list(self, scope: str | None = None) -> list[ContentSetRecord]:
        """Every content set's record (of the owner `scope`, if given), newest first."""
        # One folder per set: listed without the (maybe millions of) members in them.
        sets = []
        for set_id in self.store.folders("contents"):
            try:
                record = _content_set(set_id, self.store.get_bytes(self._key(set_id)))
            except (ObjectNotFound, NotFound):  # deleted meanwhile (or half-made), or not a set's folder
                continue
            if scope is None or record.owner == scope:
                sets.append(record)
        return sorted(sets, key=lambda r: r.created_at, reverse=True)

    def delete(self, set_id: str, scope: str | None = None) -> int:
        """Our record, manifest, archive and unpacked members; a registered prefix's objects are
        the operator's and stay. A set still validating may go: its worker finds it gone."""
        owner = self.get(set_id, scope).owner
        refuse_if_used(self.jobs, "content set", set_id, lambda j: j.content_set_id == set_id)
        return usage.delete_prefix(self.store, owner, Keys.content_set_prefix(set_id))


def _content_set(set_id: str, data: bytes) -> ContentSetRecord:
    """A stored set record; legacy sets (a dict of count, names, skipped) read as ready."""
    raw = json.loads(data)
    raw["id"] = set_id
    if "state" not in raw:  # made before states: images it listed under content_prefix
        raw["skipped"] = [{"name": s.get("file", s.get("name", "")), "reason": s.get("reason", "")}
                          for s in raw.get("skipped", [])]
    return ContentSetRecord.model_validate(raw)
