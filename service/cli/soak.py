"""`checkerless soak`: the embedded stack under a stream of small jobs and stylisations while
its processes are killed, its Redis restarted (with its data, or without) and its store stopped
for a while, at random but seeded, then a count of what was lost. It starts its own
`checkerless serve` (a temporary data folder; a Redis of its own with appendonly where
`redis-server` is installed, else the file broker; an S3 of its own, moto's server behind a
proxy that can refuse connections, where moto is installed (the dev extra), else the local
folder store) and a webhook receiver that every job reports to. After `--minutes` it stops the faults, lets everything
finish, and prints: submitted, succeeded, failed (with the reasons), lost (not ended), run
twice (two training processes for one job at once, sampled every 0.2 s), events missing (a
state change never delivered) and duplicated (one change delivered under two event ids). It
exits non-zero if anything was lost, run twice, missing or duplicated."""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

out = Console()
FINAL = ("succeeded", "failed", "cancelled")
# Small jobs on the plain network: the soak measures what is lost, not how fast it trains.
JOB = {"size": 32, "batch": 1, "checkpoint_every": 2, "decoder": "resize-nearest", "downsample": "stride-conv",
       "filtered_relu": False, "stability_weight": 0}
# Faults come fast enough to land mid-job: a 4 s lease (0.5 s heartbeats), messages lost with a
# Redis that lost its data sent again after 10 s (10 min by default).
STACK_ENV = {"CHECKERLESS_HEARTBEAT_S": "0.5", "CHECKERLESS_STALE_AFTER_S": "4",
             "CHECKERLESS_RESEND_QUEUED_AFTER_S": "10", "CHECKERLESS_MAX_ATTEMPTS": "6",
             "CHECKERLESS_WEBHOOK_ALLOW_PRIVATE": "true", "CHECKERLESS_PROBE_SIZE": "32",
             "CHECKERLESS_PREVIEW_SIZE": "64", "CHECKERLESS_EXPORT_FORMATS": "[]", "OMP_NUM_THREADS": "1"}


# The stack's S3 of its own (moto's server accepts any credentials; they need only be there).
S3_SETTINGS = {"store": "s3", "s3_bucket": "checkerless", "s3_access_key": "soak", "s3_secret_key": "soak"}


def _key_on_s3(endpoint: str) -> str:
    """An API key made in the stack's store before its API starts."""
    from service.core.auth import KeyStore
    from service.core.settings import Settings
    from service.core.storage import open_store

    return KeyStore(open_store(Settings(**S3_SETTINGS, s3_endpoint_url=endpoint))).create(name="soak")[1]


@dataclass
class Tally:
    jobs: dict[str, str] = field(default_factory=dict)  # id -> state at the end
    stylizations: dict[str, str] = field(default_factory=dict)
    refused: Counter = field(default_factory=Counter)  # "jobs: 503" -> submissions the API refused (after retries)
    reasons: Counter = field(default_factory=Counter)  # failures' reasons
    retried: int = 0  # jobs that took more than one attempt
    run_twice: set[str] = field(default_factory=set)
    events_missing: list[str] = field(default_factory=list)
    events_duplicated: list[str] = field(default_factory=list)
    redelivered: int = 0

    def rows(self) -> list[tuple[str, int, int | str]]:
        def count(states: dict[str, str], state: str | None) -> int:
            return sum(s == state if state else s not in FINAL for s in states.values())

        j, s = self.jobs, self.stylizations
        return [("submitted", len(j), len(s)),
                ("refused at submission (the client's retries spent)", sum(v for k, v in self.refused.items() if
                                                                         k.startswith("jobs")),
                 sum(v for k, v in self.refused.items() if k.startswith("stylizations"))),
                ("succeeded", count(j, "succeeded"), count(s, "succeeded")),
                ("failed, with a reason", count(j, "failed"), count(s, "failed")),
                ("cancelled", count(j, "cancelled"), count(s, "cancelled")),
                ("took more than one attempt (the faults reached them)", self.retried, "-"),
                ("lost (not ended)", count(j, None), count(s, None)),
                ("run twice (two training processes at once)", len(self.run_twice), "-"),
                ("events missing", len(self.events_missing), "-"),
                ("events duplicated (one change, two event ids)", len(self.events_duplicated), "-"),
                ("deliveries repeated (same event id, dropped)", self.redelivered, "-")]

    @property
    def ok(self) -> bool:
        lost = sum(s not in FINAL for s in [*self.jobs.values(), *self.stylizations.values()])
        return not (lost or self.run_twice or self.events_missing or self.events_duplicated)


class TwiceWatch:
    """Samples the training processes every 0.2 s: a job ever seen with two at once ran twice."""

    def __init__(self):
        from service.cli.soak_faults import training_children

        self.seen: set[str] = set()
        self._stop = threading.Event()

        def run() -> None:
            while not self._stop.wait(0.2):
                self.seen |= {job for job, n in Counter(training_children().values()).items() if n > 1}

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop(self) -> set[str]:
        self._stop.set()
        self._thread.join()
        return self.seen


def _expected_events(job) -> set[tuple[str, int]]:
    """The state changes a job made, as (state, its attempts then), from its record: queued, each
    attempt's running and, where it went back on the queue, queued; then its end."""
    expected = {("queued", 0)}
    for a in job.history:
        expected.add(("running", a.number))
        if a.outcome == "requeued":
            expected.add(("queued", a.number))
    if job.state in FINAL:
        expected.add((job.state, job.attempts))
    return expected


def _count_events(tally: Tally, jobs: dict, received: list[dict]) -> None:
    ids_seen: Counter = Counter()
    by_change: dict[tuple[str, str, int], set[str]] = {}
    for r in received:
        event = json.loads(r["body"])
        ids_seen[event["id"]] += 1
        by_change.setdefault((event["job_id"], event["state"], event["attempts"]), set()).add(event["id"])
    tally.redelivered = sum(n - 1 for n in ids_seen.values())
    for job_id, job in jobs.items():
        for state, attempts in sorted(_expected_events(job)):
            if (job_id, state, attempts) not in by_change:
                tally.events_missing.append(f"{job_id} {state} (attempts {attempts})")
    tally.events_duplicated = [f"{j} {s} (attempts {a})" for (j, s, a), ids in by_change.items()
                               if j in jobs and len(ids) > 1]


def soak(
    minutes: Annotated[float, typer.Option(help="How long faults and submissions go on.", min=0.2, max=24 * 60)] = 5,
    seed: Annotated[int, typer.Option(help="Seeds the faults' kinds and moments (a generator of their own) "
                                           "and the workload.")] = 0,
    fault_every: Annotated[float, typer.Option(help="Seconds between faults, on average.", min=2)] = 20,
    job_every: Annotated[float, typer.Option(help="Seconds between job submissions, on average.", min=0.5)] = 4,
    stylize_every: Annotated[float, typer.Option(help="Seconds between stylisation requests, on average.",
                                                 min=0.5)] = 3,
    steps: Annotated[int, typer.Option(help="Training steps of each job.", min=2, max=200)] = 12,
    max_unfinished: Annotated[int, typer.Option(help="Jobs unfinished at once, at most.", min=1, max=8)] = 3,
    drain: Annotated[int, typer.Option(help="Seconds everything may take to end after the faults stop.",
                                       min=30)] = 600,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Soak the embedded stack: jobs and stylisations while processes are killed, Redis restarted and the store stopped."""
    from checkerless_client import Client

    from service.cli import own_s3
    from service.cli.launch import embedded_server, wait_ready
    from service.cli.loadtest import _png
    from service.cli.own_redis import RedisServer
    from service.cli.soak_faults import Faults
    from service.cli.store_proxy import StoreProxy
    from service.cli.webhook_receiver import Receiver

    # The faults draw from their own generator: their kinds and the gaps between them are the
    # same for a seed whatever the workload's timing.
    rng, fault_rng, tally = random.Random(seed + 1), random.Random(seed), Tally()
    scratch = Path(tempfile.mkdtemp(prefix="checkerless-soak-"))
    redis = RedisServer(scratch / "redis") if shutil.which("redis-server") else None
    s3 = own_s3.S3Server() if own_s3.available() else None
    env, store, token = dict(STACK_ENV), None, None
    receiver = Receiver()
    try:
        if redis is not None:
            redis.start()
            env["CHECKERLESS_BROKER_URL"] = redis.url
        if s3 is not None:
            store = StoreProxy(s3.start().url)
            env |= {f"CHECKERLESS_{k.upper()}": v for k, v in {**S3_SETTINGS, "s3_endpoint_url": store.url}.items()}
            token = _key_on_s3(s3.url)  # `serve` makes a local key only for its local store
        with embedded_server(prefix="checkerless-soak-", env=env) as (url, data, server):
            with Client(url) as probe:
                if not wait_ready(probe, server, deadline=time.monotonic() + 300):
                    raise ValueError("the embedded server did not start")
            with Client(url, token or (data / "local-key").read_text().strip()) as client:
                trained = client.submit("builtin:ihc", **JOB, steps=2)
                while (trained := client.job(trained)).state not in FINAL:
                    time.sleep(0.5)
                if trained.state != "succeeded":
                    raise ValueError(f"the first job, which the stylisations use, {trained.state}: {trained.error}")
                faults = Faults(server.pid, fault_rng, redis, store)
                watch = TwiceWatch()
                work = Workload(client, rng, tally, {**JOB, "steps": steps, "webhook_url": receiver.url},
                                max_unfinished, trained.id, _png(48, 32, seed))
                _run(work, faults, minutes * 60, fault_every=fault_every, job_every=job_every,
                     stylize_every=stylize_every)
                jobs = _drain(client, tally, time.monotonic() + drain)
                tally.retried = sum(j.attempts > 1 for j in jobs.values())
                tally.run_twice = watch.stop()
                _wait_for_events(jobs, receiver, time.monotonic() + 60)
                _count_events(tally, jobs, list(receiver.received))
                tally.reasons = Counter(j.error or "" for j in jobs.values() if j.state == "failed")
    finally:
        receiver.close()
        if redis is not None:
            redis.stop()
        if store is not None:
            store.close()
        if s3 is not None:
            s3.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    _report(tally, faults.done, minutes, seed, as_json)
    if not tally.ok:
        raise typer.Exit(1)


@dataclass
class Workload:
    """What the soak asks of the stack, through the client library as a user would (its retries
    on: a 503 while Redis restarts is sent again under the same Idempotency-Key)."""

    client: object  # checkerless_client.Client
    rng: random.Random
    tally: Tally
    job: dict  # a job's settings
    max_unfinished: int
    trained_id: str  # the job whose network stylises
    photo: bytes

    def submit_job(self) -> None:
        """A job, unless max_unfinished are unfinished (their states read again first)."""
        jobs = self.tally.jobs
        for job_id in [i for i, s in jobs.items() if s not in FINAL]:
            jobs[job_id] = _state(self.client.job, job_id, jobs[job_id])
        if sum(s not in FINAL for s in jobs.values()) < self.max_unfinished:
            self._made(jobs, "jobs", lambda: self.client.submit("builtin:ihc", **self.job,
                                                                 seed=self.rng.randrange(1 << 30)))

    def request_stylization(self) -> None:
        self._made(self.tally.stylizations, "stylizations",
                   lambda: self.client.request_stylization(self.trained_id, [("photo.png", self.photo)]))

    def _made(self, into: dict, kind: str, request) -> None:
        from checkerless_client import ApiError, CheckerlessError

        try:
            made = request()
            into[made.id] = made.state
        except ApiError as e:
            self.tally.refused[f"{kind}: {e.status}"] += 1
        except CheckerlessError:  # no answer at all, after the client's retries
            self.tally.refused[f"{kind}: unreachable"] += 1


def _run(work: Workload, faults, seconds: float, *, fault_every: float, job_every: float,
         stylize_every: float) -> None:
    """Submissions and stylisation requests, each at seeded random moments, and faults between
    them, until `seconds` have passed."""
    rng, started = work.rng, time.monotonic()
    next_fault = started + faults.rng.expovariate(1 / fault_every)
    next_job, next_stylize = started, started
    while (now := time.monotonic()) < started + seconds:
        if now >= next_fault:
            faults.inject(now - started)
            next_fault = time.monotonic() + faults.rng.expovariate(1 / fault_every)
        if now >= next_job:
            next_job = now + rng.expovariate(1 / job_every)
            work.submit_job()
        if now >= next_stylize:
            next_stylize = now + rng.expovariate(1 / stylize_every)
            work.request_stylization()
        time.sleep(0.1)


def _state(get, item_id: str, last: str) -> str:
    """Its state now; the last one known if the API could not say (a fault in the way)."""
    from checkerless_client import CheckerlessError

    try:
        return get(item_id).state
    except CheckerlessError:
        return last


def _drain(client, tally: Tally, deadline: float) -> dict:
    """Until every job and stylisation has ended (or the deadline): the jobs' records at the end."""
    while True:
        for kind, get in ((tally.jobs, client.job), (tally.stylizations, client.stylization)):
            for item_id, state in kind.items():
                if state not in FINAL:
                    kind[item_id] = _state(get, item_id, state)
        if all(s in FINAL for s in [*tally.jobs.values(), *tally.stylizations.values()]) or time.monotonic() > deadline:
            return {i: client.job(i) for i in tally.jobs}
        time.sleep(1)


def _wait_for_events(jobs: dict, receiver, deadline: float) -> None:
    """Until every ended job's last event has arrived (deliveries run every second in each worker)."""
    def last_events_in() -> bool:
        got = {(e["job_id"], e["state"]) for e in (json.loads(r["body"]) for r in list(receiver.received))}
        return all((i, j.state) in got for i, j in jobs.items() if j.state in FINAL)

    while not last_events_in() and time.monotonic() < deadline:
        time.sleep(1)


def _report(tally: Tally, faults: list, minutes: float, seed: int, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"minutes": minutes, "seed": seed, "rows": [{"measure": m, "jobs": j, "stylizations": s}
                                                                   for m, j, s in tally.rows()],
                          "faults": [{"at_s": t, "fault": f, "hit": h} for t, f, h in faults],
                          "failure_reasons": dict(tally.reasons), "refused": dict(tally.refused),
                          "run_twice": sorted(tally.run_twice), "events_missing": tally.events_missing,
                          "events_duplicated": tally.events_duplicated, "ok": tally.ok}, indent=2))
        return
    table = Table("", "jobs", "stylisations", title=f"soak: {minutes:g} min, seed {seed}")
    for measure, jobs, stylizations in tally.rows():
        table.add_row(measure, str(jobs), str(stylizations))
    out.print(table)
    kinds = Table("fault", "times", title="faults injected")
    for name, n in sorted(Counter(f for _, f, _ in faults).items()):
        kinds.add_row(name, str(n))
    out.print(kinds)
    for reason, n in tally.reasons.most_common(5):
        out.print(f"failed x{n}: {reason}")
    for what in (*sorted(tally.run_twice), *tally.events_missing, *tally.events_duplicated):
        out.print(f"[red]{what}[/red]")
