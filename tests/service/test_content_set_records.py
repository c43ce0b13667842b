"""Content-set records in the job core: created by the API, moved by the validating worker
through compare-and-set updates that never lose each other, read with the owner's scope, and
deleted while a worker still validates (the worker then finds it gone). Both stores."""

from __future__ import annotations

import json
import threading
import uuid

import pytest

from service.core.content_sets import ContentSetRecord, ContentSetState, ContentSource, Manifest, ManifestImage
from service.core.errors import Conflict, NotFound
from service.core.stores import Stores
from service.core.keys import Keys, new_id
from service.core.storage import LocalStore, S3Store


@pytest.fixture(params=["local", "s3"])
def stores(request, tmp_path) -> Stores:
    if request.param == "local":
        return Stores(LocalStore(tmp_path / "store"))
    endpoint = request.getfixturevalue("s3_endpoint")
    return Stores(S3Store(bucket=f"sets-{uuid.uuid4().hex[:12]}", endpoint_url=endpoint, access_key="test",
                          secret_key="test", create_bucket=True))


def validating(stores: Stores, owner: str = "a" * 32) -> ContentSetRecord:
    return stores.content_sets.create(ContentSetRecord(id=new_id(), owner=owner, source=ContentSource.archive,
                                                       state=ContentSetState.validating))


def test_concurrent_progress_updates_are_all_kept(stores):
    record = validating(stores)

    def read_members(n: int) -> None:
        for _ in range(n):
            stores.content_sets.update(record.id, lambda r: setattr(r.progress, "members", r.progress.members + 1))

    threads = [threading.Thread(target=read_members, args=(10,)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = stores.content_sets.get(record.id)
    assert after.progress.members == 30 and after.version == 30 and after.updated_at >= record.updated_at


def test_a_set_is_ready_for_jobs_only_once_validated(stores):
    record = validating(stores)
    with pytest.raises(Conflict, match=f"content set {record.id} is validating"):
        stores.content_sets.ready(record.id)
    stores.content_sets.update(record.id, lambda r: setattr(r, "state", ContentSetState.failed) or
                               setattr(r, "error", "no readable image"))
    with pytest.raises(Conflict, match="failed: no readable image"):
        stores.content_sets.ready(record.id)
    ready = validating(stores)
    stores.content_sets.put_manifest(ready.id, Manifest(images=[ManifestImage(name="a.png", key="k/a.png", bytes=3, width=1,
                                                                              height=1)]))
    stores.content_sets.update(ready.id, lambda r: setattr(r, "state", ContentSetState.ready))
    assert stores.content_sets.ready(ready.id).state == ContentSetState.ready
    assert stores.content_sets.get_manifest(ready.id).count == 1


def test_other_owners_sets_are_missing(stores):
    record = validating(stores, owner="a" * 32)
    with pytest.raises(NotFound):
        stores.content_sets.get(record.id, scope="b" * 32)
    assert [r.id for r in stores.content_sets.list("a" * 32)] == [record.id]
    assert stores.content_sets.list("b" * 32) == []


def test_a_set_deleted_while_validating_is_gone_for_its_worker(stores):
    record = validating(stores)
    stores.store.put_bytes(Keys.content_archive(record.id), b"archive")
    assert stores.content_sets.delete(record.id) == 2
    with pytest.raises(NotFound):
        stores.content_sets.update(record.id, lambda r: setattr(r.progress, "members", 1))
    assert stores.store.list(Keys.content_set_prefix(record.id)) == []


def test_a_set_made_before_states_reads_as_ready(stores):
    set_id = new_id()
    legacy = {"count": 2, "names": ["a.png", "b.png"], "skipped": [{"file": "c.txt", "reason": "not an image"}],
              "created_at": "2026-01-02T03:04:05+00:00", "owner": "a" * 32}
    stores.store.put_bytes(Keys.content_meta(set_id), json.dumps(legacy).encode())
    record = stores.content_sets.get(set_id)
    assert (record.state, record.source, record.count) == (ContentSetState.ready, ContentSource.images, 2)
    assert record.skipped == [{"name": "c.txt", "reason": "not an image"}]
    assert stores.content_sets.ready(set_id, scope="a" * 32).id == set_id
