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
from service.core.jobs import JobStore
from service.core.keys import Keys, new_id
from service.core.storage import LocalStore, S3Store


@pytest.fixture(params=["local", "s3"])
def jobs(request, tmp_path) -> JobStore:
    if request.param == "local":
        return JobStore(LocalStore(tmp_path / "store"))
    endpoint = request.getfixturevalue("s3_endpoint")
    return JobStore(S3Store(bucket=f"sets-{uuid.uuid4().hex[:12]}", endpoint_url=endpoint, access_key="test",
                            secret_key="test", create_bucket=True))


def validating(jobs: JobStore, owner: str = "a" * 32) -> ContentSetRecord:
    return jobs.create_content_set(ContentSetRecord(id=new_id(), owner=owner, source=ContentSource.archive,
                                                    state=ContentSetState.validating))


def test_concurrent_progress_updates_are_all_kept(jobs):
    record = validating(jobs)

    def read_members(n: int) -> None:
        for _ in range(n):
            jobs.update_content_set(record.id, lambda r: setattr(r.progress, "members", r.progress.members + 1))

    threads = [threading.Thread(target=read_members, args=(10,)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = jobs.get_content_set(record.id)
    assert after.progress.members == 30 and after.version == 30 and after.updated_at >= record.updated_at


def test_a_set_is_ready_for_jobs_only_once_validated(jobs):
    record = validating(jobs)
    with pytest.raises(Conflict, match=f"content set {record.id} is validating"):
        jobs.ready_content_set(record.id)
    jobs.update_content_set(record.id, lambda r: setattr(r, "state", ContentSetState.failed) or
                            setattr(r, "error", "no readable image"))
    with pytest.raises(Conflict, match="failed: no readable image"):
        jobs.ready_content_set(record.id)
    ready = validating(jobs)
    jobs.put_manifest(ready.id, Manifest(images=[ManifestImage(name="a.png", key="k/a.png", bytes=3, width=1,
                                                               height=1)]))
    jobs.update_content_set(ready.id, lambda r: setattr(r, "state", ContentSetState.ready))
    assert jobs.ready_content_set(ready.id).state == ContentSetState.ready
    assert jobs.get_manifest(ready.id).count == 1


def test_other_owners_sets_are_missing(jobs):
    record = validating(jobs, owner="a" * 32)
    with pytest.raises(NotFound):
        jobs.get_content_set(record.id, scope="b" * 32)
    assert [r.id for r in jobs.list_content_sets("a" * 32)] == [record.id]
    assert jobs.list_content_sets("b" * 32) == []


def test_a_set_deleted_while_validating_is_gone_for_its_worker(jobs):
    record = validating(jobs)
    jobs.store.put_bytes(Keys.content_archive(record.id), b"archive")
    assert jobs.delete_content_set(record.id) == 2
    with pytest.raises(NotFound):
        jobs.update_content_set(record.id, lambda r: setattr(r.progress, "members", 1))
    assert jobs.store.list(Keys.content_set_prefix(record.id)) == []


def test_a_set_made_before_states_reads_as_ready(jobs):
    set_id = new_id()
    legacy = {"count": 2, "names": ["a.png", "b.png"], "skipped": [{"file": "c.txt", "reason": "not an image"}],
              "created_at": "2026-01-02T03:04:05+00:00", "owner": "a" * 32}
    jobs.store.put_bytes(Keys.content_meta(set_id), json.dumps(legacy).encode())
    record = jobs.get_content_set(set_id)
    assert (record.state, record.source, record.count) == (ContentSetState.ready, ContentSource.images, 2)
    assert record.skipped == [{"name": "c.txt", "reason": "not an image"}]
    assert jobs.ready_content_set(set_id, scope="a" * 32).id == set_id
