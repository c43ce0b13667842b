"""`checkerless soak`: its count of what was lost, checked on made-up records (it must see a
missing event, a duplicated one and a job left unended), then a short soak of the real stack
as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from service.cli.soak import Tally, _count_events


def _job(state: str, outcomes: list[str]) -> SimpleNamespace:
    history = [SimpleNamespace(number=i + 1, outcome=o) for i, o in enumerate(outcomes)]
    return SimpleNamespace(state=state, attempts=len(history), history=history)


def _delivery(event_id: str, job_id: str, state: str, attempts: int) -> dict:
    return {"body": json.dumps({"id": event_id, "job_id": job_id, "state": state, "attempts": attempts}).encode()}


def test_the_tally_sees_missing_duplicated_and_repeated_events_and_unended_work():
    jobs = {"a": _job("succeeded", ["requeued", "succeeded"]), "b": _job("cancelled", [])}
    received = [_delivery("1", "a", "queued", 0), _delivery("2", "a", "running", 1),
                _delivery("3", "a", "queued", 1),  # attempt 2's running never arrived
                _delivery("4", "a", "succeeded", 2), _delivery("4", "a", "succeeded", 2),  # the same event twice
                _delivery("5", "b", "queued", 0), _delivery("6", "b", "cancelled", 0),
                _delivery("7", "b", "cancelled", 0)]  # one change under a second event id
    tally = Tally(jobs={"a": "succeeded", "b": "cancelled"}, stylizations={"s": "queued"})
    _count_events(tally, jobs, received)
    assert tally.events_missing == ["a running (attempts 2)"]
    assert tally.events_duplicated == ["b cancelled (attempts 0)"]
    assert tally.redelivered == 1
    rows = {measure: (j, s) for measure, j, s in tally.rows()}
    assert rows["lost (not ended)"] == (0, 1) and not tally.ok

    clean = Tally(jobs={"a": "succeeded"})
    _count_events(clean, {"a": jobs["a"]}, [*received[:4], _delivery("8", "a", "running", 2)])
    assert clean.events_missing == [] and clean.events_duplicated == [] and clean.ok


@pytest.mark.slow
def test_a_short_soak_loses_nothing(tmp_path):
    """15 s of submissions with a fault every 4 s on average (a training child or a whole worker
    killed, the train worker stopped, Redis restarted with or without its data, the store
    stopped), then the drain: about a minute on a 2-core CPU, a whole service with its own Redis
    and S3, which is what the command runs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKERLESS_")}
    p = subprocess.run([sys.executable, "-m", "service.cli", "soak", "--minutes", "0.25", "--fault-every", "4",
                        "--seed", "18", "--steps", "4", "--json"],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
    assert p.returncode == 0, (p.stdout[-3000:], p.stderr[-3000:])
    result = json.loads(p.stdout)
    rows = {r["measure"]: (r["jobs"], r["stylizations"]) for r in result["rows"]}
    assert rows["submitted"][0] >= 2 and rows["submitted"][1] >= 2, rows
    assert rows["lost (not ended)"] == (0, 0) and rows["run twice (two training processes at once)"][0] == 0
    assert rows["events missing"][0] == 0 and rows["events duplicated (one change, two event ids)"][0] == 0
    # Seed 18 draws its first fault 0.8 s in, and it is the store stopped for 2.3 s (the faults
    # have a generator of their own); the second lands at about 14 s, and whether a third still
    # lands within the 15 s depends on the machine (it did not on an AMD EPYC without AVX-512
    # under the whole suite).
    assert result["faults"][0]["fault"] == "stop the store for a while", result["faults"]
    assert len(result["faults"]) >= 2 and result["ok"] is True
    assert list(tmp_path.iterdir()) == []  # its server's data and its Redis lived in temporary folders
