"""Compare-and-set on one JSON record in the store: read it with its version, apply a change,
write it back only if nobody wrote it meanwhile; on a conflict, read and apply again. Every
record that several processes change (jobs, stylisations, experiments, content sets, an
owner's usage) is changed this way, so no writer loses another's update.

A record that many requests change at once (an owner's usage record, under a burst of their
submissions) is changed with `take_turns`: within one process its writers take turns (a lock
per key), so they write one after another instead of each losing to the others and reading
again (200 submissions at once from one owner lost 1,045 to 1,182 compare-and-sets without
turns, none with them). Across processes the compare-and-set alone keeps it right. Records
with one or two writers (a job's heartbeat and progress) do without: a turn would only add
a wait to the lease's writes."""

from __future__ import annotations

import random
import threading
import time
import weakref
from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel

from service.core.errors import Conflict, NotFound
from service.core.storage import ObjectNotFound, ObjectStore, VersionConflict

R = TypeVar("R", bound=BaseModel)
TRIES = 100
# A turn waited longer than this is skipped: the compare-and-set is right without it, and a
# change that (against the rules) changes another record inside it cannot deadlock.
TURN_WAIT_S = 5.0
_turns: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_turns_guard = threading.Lock()


def _turn(store: ObjectStore, key: str) -> threading.RLock:
    with _turns_guard:
        lock = _turns.get((id(store), key))
        if lock is None:
            lock = _turns[(id(store), key)] = threading.RLock()
        return lock


class Skip(Exception):
    """Raised by a change that finds nothing to do: the record is left as it is."""


def read(store: ObjectStore, key: str, model: type[R], what: str) -> tuple[R, str]:
    try:
        data, version = store.get_versioned(key)
    except ObjectNotFound:
        raise NotFound(f"no {what}") from None
    return model.model_validate_json(data), version


def update(store: ObjectStore, key: str, model: type[R], change: Callable[[R], None], what: str, *,
           take_turns: bool = False) -> R:
    """The record after `change` (which may raise Skip: then as it was). The record must have a
    `version` field: bumped by every write, so two writes of one record never look alike.
    `take_turns`: with this process's other writers of the record (above)."""
    if not take_turns:
        return _update(store, key, model, change, what)
    turn = _turn(store, key)
    took = turn.acquire(timeout=TURN_WAIT_S)
    try:
        return _update(store, key, model, change, what)
    finally:
        if took:
            turn.release()


def _update(store: ObjectStore, key: str, model: type[R], change: Callable[[R], None], what: str) -> R:
    for attempt in range(TRIES):
        record, version = read(store, key, model, what)
        try:
            change(record)
        except Skip:
            return record
        record.version += 1
        try:
            store.put_if(key, record.model_dump_json().encode(), version=version, content_type="application/json")
            return record
        except VersionConflict:
            time.sleep(random.uniform(0, 0.01 * min(attempt + 1, 10)))  # another writer won; again
    raise Conflict(f"{what} is being changed by too many writers at once; try again")


def written(update: Callable[[Callable[[R], None]], object], change: Callable[[R], None]) -> bool:
    """Whether `update(change)` wrote the change: False if it skipped (raised Skip) or the
    record is gone (`update` raised NotFound). For a claim that exactly one caller wins."""
    wrote = [False]

    def tracked(r: R) -> None:
        wrote[0] = False  # a retry after a conflict starts again
        change(r)
        wrote[0] = True

    try:
        update(tracked)
    except NotFound:
        return False
    return wrote[0]


def create(store: ObjectStore, key: str, record: BaseModel) -> None:
    """VersionConflict if the record exists already."""
    store.put_if(key, record.model_dump_json().encode(), version=None, content_type="application/json")
