"""`checkerless loadtest`: a bounded load test on loopback. It starts its own embedded server
(a fresh data folder, limits raised for the test), then measures, with many concurrent
clients: job submissions (each must be recorded exactly once, and every job must reach a final
state: the test cancels them, so the trainer's speed does not bound it), job lists, and
stylisation requests (with how many finished within the time limit). Then what one submission
costs when its owner has few jobs and when they have many (`--history`, written straight into
the server's store as finished jobs): it should not grow with them. Prints requests/s and
p50/p99 latencies as tables (or JSON), and for each burst the CPU time it cost the API process,
the workers (with their training and stylising processes) and the load test's own clients: on a
machine of few cores they share the CPU, so the split says what bounds the latencies."""

from __future__ import annotations

import io
import json
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

out = Console()


def _png(w: int, h: int, seed: int) -> bytes:
    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


class CpuMeter:
    """CPU seconds (user + system) spent so far by the server's own process (the API), by the
    rest of its process tree (the workers, their fork servers and children; a child that ended
    counts through its parent's reaped-children times) and by this process (the clients).
    The kernel counts other processes' CPU in clock ticks (10 ms), so a burst of a few requests
    may show 0 for the API; this process's own time is exact."""

    def __init__(self, server_pid: int):
        import psutil

        self.server, self._no_such = psutil.Process(server_pid), psutil.NoSuchProcess

    def _spent(self, proc, *, with_children: bool) -> float:
        try:
            t = proc.cpu_times()
        except self._no_such:
            return 0.0
        return t.user + t.system + (t.children_user + t.children_system if with_children else 0.0)

    def snapshot(self) -> dict[str, float]:
        api = self._spent(self.server, with_children=False)
        tree = self._spent(self.server, with_children=True) - api
        tree += sum(self._spent(p, with_children=True) for p in self.server.children(recursive=True))
        return {"api": api, "workers": tree, "clients": time.process_time()}


def _burst(fn, n: int, concurrency: int, meter: CpuMeter) -> tuple[list, dict]:
    latencies: list[float] = []

    def timed(i: int):
        t = time.perf_counter()
        result = fn(i)
        latencies.append(time.perf_counter() - t)
        return result

    before = meter.snapshot()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(timed, range(n)))
    wall = time.perf_counter() - started
    after = meter.snapshot()
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return results, {"requests": n, "concurrency": concurrency, "seconds": round(wall, 2),
                     "requests_per_s": round(n / wall, 1), "p50_ms": round(1000 * q[49], 1),
                     "p99_ms": round(1000 * q[98], 1),
                     "cpu_s": {k: round(after[k] - before[k], 3) for k in after}}


ONE_AT_A_TIME = 30  # submissions timed one after another at each history size


def _write_history(data, token: str, template_id: str, total: int) -> None:
    """Finished jobs straight into the embedded server's store (its record and list entries, as
    the API writes them), until the owner has `total`: a history to submit against."""
    from datetime import timedelta

    from service.core.auth import KeyStore
    from service.core.keys import Keys, new_id
    from service.core.records import JobState, now
    from service.core.settings import Settings
    from service.core.storage import open_store
    from service.core.stores import Stores
    from service.core.stores.record_store import JOBS

    stores = Stores(open_store(Settings(data_dir=data)))
    owner = KeyStore(stores.store).lookup(token).owner
    template, have = stores.jobs.get(template_id), sum(1 for _ in stores.jobs.all(owner))
    base = now() - timedelta(days=30)

    def one(i: int) -> None:
        record = template.model_copy(update={"id": new_id(), "state": JobState.cancelled,
                                             "created_at": base + timedelta(seconds=i), "pending_events": []})
        stores.records.index(JOBS, record)
        stores.records.create(Keys.job(record.id), record)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(max(0, total - have))))


def _one_at_a_time(client, style: str, settings: dict, history: int) -> dict:
    latencies = []
    for i in range(ONE_AT_A_TIME):
        t = time.perf_counter()
        job_id = client.submit(style, **settings, seed=10_000 + i).id
        latencies.append(time.perf_counter() - t)
        client.cancel(job_id)
    q = statistics.quantiles(latencies, n=100)
    return {"owner_jobs": history, "requests": ONE_AT_A_TIME, "p50_ms": round(1000 * q[49], 1),
            "p99_ms": round(1000 * q[98], 1)}


def loadtest(
    submits: Annotated[int, typer.Option(help="Concurrent job submissions.", min=1, max=2000)] = 200,
    lists: Annotated[int, typer.Option(help="Concurrent job lists.", min=1, max=2000)] = 100,
    stylizations: Annotated[int, typer.Option(help="Concurrent stylisation requests.", min=1, max=500)] = 50,
    history: Annotated[int, typer.Option(help="Jobs the owner has when one submission is timed the second time "
                                               "(the first: 10).", min=100, max=100_000)] = 10_000,
    timeout: Annotated[int, typer.Option(help="Seconds the whole test may take at most.", min=30, max=3600)] = 600,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Load-test an embedded server on loopback: submissions, lists and stylisations."""
    from checkerless_client import Client, RetryPolicy

    from service.cli.launch import embedded_server, wait_ready

    def every_job(client) -> list:
        return list(client.jobs(limit=1000))

    deadline = time.monotonic() + timeout
    env = {"CHECKERLESS_QUOTA_ACTIVE_JOBS": str(submits + 10), "OMP_NUM_THREADS": "1"}
    with embedded_server(prefix="checkerless-load-", env=env) as (url, data, server):
        with Client(url) as probe:
            if not wait_ready(probe, server, deadline=deadline):
                raise ValueError("the embedded server did not start")
        # A load test measures the server: nothing is retried (a lost request shows as lost).
        with Client(url, (data / "local-key").read_text().strip(), retry=RetryPolicy(attempts=1),
                    max_connections=max(submits, lists, stylizations)) as client:
            style = client.upload_style(("s.png", _png(32, 32, 0))).id
            tiny = {"steps": 1, "size": 16, "batch": 1}
            # One trained network to stylise with.
            trained = client.submit(style, **tiny).id
            while (state := client.job(trained).state) not in ("succeeded", "failed", "cancelled"):
                if time.monotonic() > deadline:
                    raise ValueError("the first job did not finish in time")
                time.sleep(0.5)
            if state != "succeeded":
                raise ValueError(f"the first job {state}")
            rows, alone, meter = {}, [], CpuMeter(server.pid)
            token = (data / "local-key").read_text().strip()
            _write_history(data, token, trained, 10)
            alone.append(_one_at_a_time(client, style, tiny, 10))
            before = {j.id for j in every_job(client)}

            ids, rows["submit jobs"] = _burst(lambda i: client.submit(style, **tiny, seed=i).id, submits, submits, meter)
            listed = {j.id for j in every_job(client)}
            exactly_once = len(set(ids)) == submits and listed - before == set(ids)
            _, rows["list jobs"] = _burst(lambda i: len(client.jobs_page().items), lists, lists, meter)  # a first page
            for job_id in ids:  # every job to a final state: queued ones end at once
                client.cancel(job_id)
            while any(j.state in ("queued", "running") for j in every_job(client)):
                if time.monotonic() > deadline:
                    break
                time.sleep(1)
            final = sum(j.state in ("succeeded", "failed", "cancelled") for j in every_job(client))

            photo = _png(64, 48, 1)
            requests, rows["request stylisations"] = _burst(
                lambda i: client.request_stylization(trained, [("p.png", photo)]).id, stylizations, stylizations, meter)
            started = time.perf_counter()
            pending = set(requests)
            while pending and time.monotonic() < deadline:
                pending = {r for r in pending if client.stylization(r).state in ("queued", "running")}
                time.sleep(1)
            finished = stylizations - len(pending)
            stylised_in = time.perf_counter() - started

            _write_history(data, token, trained, history)
            alone.append(_one_at_a_time(client, style, tiny, history))
    summary = {"rows": rows, "jobs_recorded_exactly_once": exactly_once, "jobs_final": f"{final}/{len(listed)}",
               "stylisations_finished": f"{finished}/{stylizations} in {stylised_in:.0f} s",
               "one_submission_at_a_time": alone}
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    table = Table("requests", "count", "concurrent", "req/s", "p50 ms", "p99 ms", "API CPU ms/req", "workers CPU s",
                  "clients CPU s", title=f"loopback load test ({url}; {os.cpu_count()} cores)")
    for name, r in rows.items():
        cpu = r["cpu_s"]
        table.add_row(name, str(r["requests"]), str(r["concurrency"]), f"{r['requests_per_s']:.1f}",
                      f"{r['p50_ms']:.0f}", f"{r['p99_ms']:.0f}", f"{1000 * cpu['api'] / r['requests']:.1f}",
                      f"{cpu['workers']:.2f}", f"{cpu['clients']:.2f}")
    out.print(table)
    table = Table("owner's jobs", "submissions", "p50 ms", "p99 ms", title="one submission at a time")
    for r in alone:
        table.add_row(f"{r['owner_jobs']:,}", str(r["requests"]), f"{r['p50_ms']:.0f}", f"{r['p99_ms']:.0f}")
    out.print(table)
    out.print(f"jobs recorded exactly once: {exactly_once}; jobs in a final state: {summary['jobs_final']}; "
              f"stylisations finished: {summary['stylisations_finished']}")
    if not exactly_once:
        raise typer.Exit(1)
