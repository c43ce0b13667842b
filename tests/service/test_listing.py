"""Paged lists read the index, not every record: pages walk every job once, newest first, an
owner's pages hold only theirs, a deleted job leaves the index, a forged cursor is refused, the
rebuild indexes records written before the index, and a page of 10 reads 10 records however
many there are. On the local store and on S3 (moto's server over HTTP)."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from service.core.errors import BadRequest
from service.core.stores import Stores
from service.core.keys import Keys, new_id
from service.core.records import ExperimentRecord, JobRecord, JobState, now
from service.core.storage import LocalStore, S3Store

RECORDS = ("/job.json", "/experiment.json")


class Counting:
    """The real store, counting what it is asked: reads of records, and full listings."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self.record_reads = self.full_lists = 0

    def _count_read(self, key: str) -> None:
        if key.endswith(RECORDS):
            with self._lock:
                self.record_reads += 1

    def get_bytes(self, key: str) -> bytes:
        self._count_read(key)
        return super().get_bytes(key)

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        self._count_read(key)
        return super().get_versioned(key)

    def list(self, prefix: str) -> list[str]:
        with self._lock:
            self.full_lists += 1
        return super().list(prefix)

    def reset(self) -> None:
        self.record_reads = self.full_lists = 0


class CountingLocal(Counting, LocalStore):
    pass


class CountingS3(Counting, S3Store):
    pass


@pytest.fixture(params=["local", "s3"])
def stores(request, tmp_path) -> Stores:
    if request.param == "local":
        store = CountingLocal(tmp_path / "store")
    else:
        store = CountingS3(bucket=f"list-{uuid.uuid4().hex[:12]}", endpoint_url=request.getfixturevalue("s3_endpoint"),
                           access_key="test", secret_key="test", create_bucket=True)
    stores = Stores(store)
    stores.records.ensure_index()  # a new, empty store: indexed at once (as the API does when it starts)
    return stores


def make_job(stores: Stores, owner: str = "", created_at=None) -> JobRecord:
    record = JobRecord(id=new_id(), owner=owner, config={"decoder": "deconv", "steps": 3}, style_id=new_id(), steps=3)
    if created_at is not None:
        record.created_at = created_at
    return stores.jobs.create(record)


def walk(stores: Stores, scope: str | None, limit: int, what: str = "jobs") -> list[list[str]]:
    """The ids on each page, following the cursors to the end."""
    pages, cursor = [], None
    for _ in range(1000):
        records, cursor = (stores.jobs.list if what == "jobs" else stores.experiments.list)(scope, limit=limit, cursor=cursor)
        pages.append([r.id for r in records])
        if cursor is None:
            return pages
    raise AssertionError("the cursors never ended")


def test_pages_walk_every_job_exactly_once_newest_first(stores):
    base = now()
    # Across the index's folders (0.1 s, 17 minutes, 11.6 days of creation time each).
    made = [make_job(stores, created_at=base - timedelta(seconds=i * 0.05, minutes=i * i * 9)) for i in range(20)]
    made += [make_job(stores, created_at=made[5].created_at) for _ in range(3)]  # the same microsecond
    newest_first = [r.id for r in sorted(made, key=lambda r: (-r.created_at.timestamp(), r.id))]
    pages = walk(stores, None, 7)
    assert [len(p) for p in pages] == [7, 7, 7, 2]
    assert [i for p in pages for i in p] == newest_first
    assert walk(stores, None, 23) == [newest_first]  # exactly one page: no cursor to an empty one
    assert walk(stores, None, 1000) == [newest_first]
    records, cursor = stores.jobs.list(None, limit=5)
    assert [r.id for r in records] == newest_first[:5] and cursor
    assert [r.id for r in stores.jobs.list(None, limit=5, cursor=cursor)[0]] == newest_first[5:10]


def test_an_owner_sees_only_theirs_on_every_page_and_an_admin_everyones(stores):
    a, b = new_id(), new_id()
    base = now()
    mine = {a: [], b: []}
    for i in range(17):  # interleaved in time, so each owner's pages skip the other's
        owner = a if i % 3 else b
        mine[owner].append(make_job(stores, owner, base - timedelta(seconds=i)).id)
    for owner in (a, b):
        pages = walk(stores, owner, 4)
        assert [i for p in pages for i in p] == mine[owner]
        assert all(len(p) == 4 for p in pages[:-1])
    assert sorted(i for p in walk(stores, None, 4) for i in p) == sorted(mine[a] + mine[b])
    assert walk(stores, new_id(), 4) == [[]]  # an owner with nothing
    # A cursor from one owner's pages only continues the caller's own.
    _, cursor = stores.jobs.list(a, limit=2)
    assert set(r.id for r in stores.jobs.list(b, limit=100, cursor=cursor)[0]) <= set(mine[b])
    assert sorted(r.id for r in stores.jobs.all(a)) == sorted(mine[a])


def test_a_deleted_job_leaves_the_index(stores):
    made = [make_job(stores, new_id()) for _ in range(5)]
    gone = made[2]
    stores.jobs.request_cancel(gone.id)
    stores.jobs.delete(gone.id)
    listed = [i for p in walk(stores, None, 2) for i in p]
    assert gone.id not in listed and len(listed) == 4
    assert walk(stores, gone.owner, 2) == [[]]
    assert not [k for k in stores.store.list("index") if gone.id in k]


def test_an_entry_whose_record_is_gone_is_skipped(stores):
    made = [make_job(stores) for _ in range(4)]
    stores.store.delete(Keys.job(made[1].id))  # as a delete that stopped halfway leaves it
    assert [i for p in walk(stores, None, 2) for i in p] == [r.id for r in reversed(made) if r is not made[1]]


@pytest.mark.parametrize("cursor", ["", "x", "../../keys", "0" * 17, "0" * 17 + "-" + "g" * 32,
                                    "0" * 17 + "-" + "a" * 32 + "/../x", "owner/" + "a" * 32])
def test_a_cursor_this_server_never_gave_is_refused(stores, cursor):
    make_job(stores)
    with pytest.raises(BadRequest, match="not one this server gave"):
        stores.jobs.list(None, limit=10, cursor=cursor)
    with pytest.raises(BadRequest):
        stores.experiments.list(new_id(), limit=10, cursor=cursor)


def test_experiments_are_paged_and_deleted_from_the_index(stores):
    owner = new_id()
    made = []
    for i in range(5):
        job = make_job(stores, owner)
        stores.jobs.request_cancel(job.id)
        made.append(stores.experiments.create(ExperimentRecord(
            id=new_id(), owner=owner, style_id=job.style_id, settings={}, variants=[{"decoder": "deconv",
                                                                                    "job_id": job.id}],
            created_at=now() - timedelta(seconds=i))))
    assert [i for p in walk(stores, owner, 2, "experiments") for i in p] == [e.id for e in made]
    assert walk(stores, new_id(), 2, "experiments") == [[]]
    stores.experiments.delete(made[0].id, owner)
    assert [i for p in walk(stores, None, 3, "experiments") for i in p] == [e.id for e in made[1:]]


def test_the_rebuild_indexes_records_written_before_the_index(stores):
    store = stores.store
    owner = new_id()
    old = [JobRecord(id=new_id(), owner=owner if i % 2 else "", config={"decoder": "deconv"}, style_id=new_id(),
                     steps=3, created_at=now() - timedelta(days=30, seconds=i)) for i in range(6)]
    old_exp = ExperimentRecord(id=new_id(), owner=owner, style_id=new_id(), settings={},
                               variants=[{"decoder": "deconv", "job_id": old[1].id}])
    for r in old:  # as an older version wrote them: records only
        store.put_bytes(Keys.job(r.id), r.model_dump_json().encode())
    store.put_bytes(Keys.experiment(old_exp.id), old_exp.model_dump_json().encode())
    new = make_job(stores, owner)
    assert [i for p in walk(stores, None, 4) for i in p] == [new.id]  # the index does not know them yet

    store.delete(Keys.index_version())  # what a store written by an older version lacks
    fresh = Stores(store)
    store.reset()
    assert fresh.jobs.list(None, limit=100)[0][0].id == new.id  # the first list rebuilds it, once
    assert store.record_reads == 8 + 7  # the rebuild read each record, then the page its own
    assert store.exists(Keys.index_version())
    assert [i for p in walk(fresh, None, 4) for i in p] == [new.id] + [r.id for r in old]
    assert [i for p in walk(fresh, owner, 4) for i in p] == [new.id] + [r.id for r in old if r.owner]
    assert [i for p in walk(fresh, owner, 4, "experiments") for i in p] == [old_exp.id]

    assert fresh.records.rebuild_index() == {"jobs": 0, "experiments": 0}  # again: nothing to add
    store.reset()
    Stores(store).jobs.list(None, limit=10)
    assert store.record_reads == 7 and store.full_lists == 0  # the marker is there: no rebuild


def test_a_page_of_ten_reads_ten_records_of_thousands(stores):
    owner = new_id()
    n = 2000 if isinstance(stores.store, LocalStore) else 400  # moto: ~15 ms a job on two cores
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda _: make_job(stores, owner if _ % 2 else new_id()), range(n)))
    store = stores.store
    for scope in (None, owner):
        store.reset()
        records, cursor = stores.jobs.list(scope, limit=10)
        assert len(records) == 10 and cursor
        assert store.record_reads == 10 and store.full_lists == 0, (store.record_reads, store.full_lists)
        store.reset()
        more, _ = stores.jobs.list(scope, limit=10, cursor=cursor)
        assert store.record_reads == 10 and not {r.id for r in more} & {r.id for r in records}
    # What needs every record still reads them all, through the index.
    store.reset()
    assert sum(1 for _ in stores.jobs.all(owner)) == n // 2
    assert store.record_reads == n // 2
    assert {r.state for r in made} == {JobState.queued}
