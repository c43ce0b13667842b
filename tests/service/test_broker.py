"""The embedded broker (service/core/broker.py) with kombu's own consumers: messages are
never seen half-written, each is taken by exactly one consumer, one that does not parse is
set aside without killing the consumer, and nothing is written outside the data folder."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

from kombu import Connection

from service.core.queue import broker_options
from service.core.settings import Settings


def connect(settings: Settings) -> Connection:
    return Connection(settings.resolved_broker_url, transport_options=broker_options(settings))


def test_a_message_that_does_not_parse_is_set_aside_and_the_next_one_arrives(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    with connect(settings) as conn:
        q = conn.SimpleQueue("work")
        (settings.broker_dir / "in" / "0_half.work.msg").write_bytes(b'{"body": "half wri')  # a torn write
        q.put({"n": 1})
        m = q.get(timeout=5)
        assert m.payload == {"n": 1}
        m.ack()
        q.close()
    assert [p.name for p in (settings.broker_dir / "broken").iterdir()] == ["0_half.work.msg"]
    assert list((settings.broker_dir / "in").glob("*.work.msg")) == []


def test_each_message_goes_to_exactly_one_of_racing_consumers_and_nothing_leaves_the_data_folder(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    tmp_before = set(Path(tempfile.gettempdir()).glob("*.msg"))
    n, got, lock = 300, [], threading.Lock()
    with connect(settings) as conn:
        q = conn.SimpleQueue("race")
        for i in range(n):
            q.put({"n": i})
        q.close()

    def consume():
        with connect(settings) as conn:
            q = conn.SimpleQueue("race")
            while True:
                try:
                    m = q.get(timeout=1)
                except q.Empty:
                    break
                with lock:
                    got.append(m.payload["n"])
                m.ack()
            q.close()

    threads = [threading.Thread(target=consume) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(n))  # none lost, none twice
    assert set(Path(tempfile.gettempdir()).glob("*.msg")) == tmp_before
    assert list((settings.broker_dir / "processed").iterdir()) == []
    assert not any(p.name.endswith(".part") for p in (settings.broker_dir / "in").iterdir())
