"""Compare-and-set on one record (service/core/cas.py) under threads of one process and under
two store clients (as two processes are): no update is lost, and within a process writers that
take turns do not lose to each other."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from pydantic import BaseModel

from service.core import cas
from service.core.storage import LocalStore, VersionConflict

WRITERS = 24


class Counter(BaseModel):
    version: int = 0
    count: int = 0


class CountingConflicts(LocalStore):
    conflicts = 0

    def put_if(self, key, data, *, version, content_type="application/octet-stream"):
        try:
            return super().put_if(key, data, version=version, content_type=content_type)
        except VersionConflict:
            type(self).conflicts += 1
            raise


def _bump(r: Counter) -> None:
    r.count += 1


def test_threads_of_one_process_take_turns_and_lose_nothing(tmp_path):
    store = CountingConflicts(tmp_path)
    cas.create(store, "c.json", Counter())
    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(lambda _: cas.update(store, "c.json", Counter, _bump, "counter", take_turns=True),
                      range(WRITERS)))
    assert cas.read(store, "c.json", Counter, "counter")[0].count == WRITERS
    assert CountingConflicts.conflicts == 0  # each read the one before it: nobody wrote twice


def test_two_clients_of_one_store_still_lose_nothing(tmp_path):
    """Two store objects on one folder stand for two processes: turns do not span them, the
    compare-and-set does."""
    stores = [LocalStore(tmp_path), LocalStore(tmp_path)]
    cas.create(stores[0], "c.json", Counter())
    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(lambda i: cas.update(stores[i % 2], "c.json", Counter, _bump, "counter", take_turns=True),
                      range(WRITERS)))
    assert cas.read(stores[1], "c.json", Counter, "counter")[0].count == WRITERS
