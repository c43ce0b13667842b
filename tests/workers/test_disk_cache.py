"""The disk cache both worker caches are built on (workers/disk_cache.py): within its budget,
the least recently used out, never the file just added, and a user's link kept."""

from __future__ import annotations

import os
import time

from workers.disk_cache import DiskCache


def test_a_file_just_added_stays_even_when_it_alone_passes_the_budget(tmp_path):
    cache = DiskCache(tmp_path, 1000)
    old = cache.add_bytes("aa-old", b"o" * 600)
    new = cache.add_bytes("bb-new", b"n" * 1200)  # more than the whole budget
    assert new.exists() and not old.exists()
    assert cache.held_bytes() == 1200 and int((tmp_path / "bytes").read_text()) == 1200


def test_a_hit_marks_it_recently_used_and_a_link_outlives_its_eviction(tmp_path):
    cache = DiskCache(tmp_path, 1000)
    past = time.time_ns() - 3600 * 10**9
    for i, name in enumerate(("aa-1", "bb-2")):
        os.utime(cache.add_bytes(name, bytes([i]) * 400), ns=(past + i, past + i))  # used in this order
    assert cache.hit("aa-1") is not None and cache.hit("cc-missing") is None  # aa-1 now the most recent
    mine = cache.link(cache.path("bb-2"), tmp_path / "request" / "net.ckpt")
    cache.add_bytes("dd-3", b"d" * 400)  # 1200 > 1000: down to 900, the least recently used first
    assert not cache.path("bb-2").exists() and cache.path("aa-1").exists()
    assert mine.read_bytes() == bytes([1]) * 400  # the request's own link


def test_temporary_files_left_by_a_killed_writer_are_swept_once_old(tmp_path):
    cache = DiskCache(tmp_path, 100)
    left, fresh = cache.temp(), cache.temp()
    left.write_bytes(b"x")
    fresh.write_bytes(b"y")
    hour_ago = time.time() - 2 * 3600
    os.utime(left, (hour_ago, hour_ago))
    cache.add_bytes("aa-big", b"z" * 200)  # past the budget: a scan
    assert not left.exists() and fresh.exists()
