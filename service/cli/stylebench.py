"""`checkerless stylize-bench`: what the service adds to a stylisation. It starts its own
embedded server (as `checkerless loadtest` does: a fresh data folder, loopback), trains one tiny
network, then measures for one image of SIZE x SIZE:
- the bare forward pass of that network in this process (models.stylize.stylize_tensor, the
  median of N, after one untimed call), in the precision the stylise server uses (auto, by the
  machine and the network: models/stylize.py stylize_precision);
- request-to-PNG through the API: POST the image, poll the stylisation, GET the PNG; the first
  request (cold: the worker starts its stylise server) and the median of N more (warm), each
  warm request right after a bare forward, so both see the same load on the machine;
and prints each as a ratio to the bare forward. A second table splits the warm requests' time
by where it went, from the stylisation records (created, started, finished) and the stylise
server's own timing (its status file in the data folder)."""

from __future__ import annotations

import json
import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

out = Console()


def _photo_png(size: int) -> bytes:
    import io

    import skimage.data
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(skimage.data.astronaut()).resize((size, size), Image.Resampling.LANCZOS).save(buf, format="PNG")
    return buf.getvalue()


def _ms(seconds: float) -> float:
    return round(1000 * seconds, 1)


def stylebench(
    size: Annotated[int, typer.Option(help="Width and height of the image, in pixels.", min=16, max=4096)] = 512,
    repeats: Annotated[int, typer.Option("-n", "--repeats", help="Timed warm requests and bare forwards (medians reported).", min=1, max=200)] = 10,
    poll: Annotated[float, typer.Option(help="Seconds between the client's polls of the stylisation.", min=0.001, max=2)] = 0.05,
    timeout: Annotated[int, typer.Option(help="Seconds the whole benchmark may take at most.", min=30, max=3600)] = 600,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Stylisation latency through the real API, as a multiple of the network's bare forward time."""
    import torch
    from checkerless_client import Client, RetryPolicy

    from models.checkpoint import load_network
    from models.images import load_tensor
    from models.stylize import stylize_precision, stylize_tensor
    from models.hardware import resolve_accelerator
    from service.cli.launch import embedded_server, wait_ready

    deadline = time.monotonic() + timeout
    photo = _photo_png(size)
    device = "cuda" if resolve_accelerator("auto") == "gpu" else "cpu"

    def until(what: str, predicate, interval: float):
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise ValueError(f"timed out waiting for {what}")
            time.sleep(interval)

    with embedded_server(prefix="checkerless-stylebench-") as (url, data, server):
        with Client(url) as probe:
            if not wait_ready(probe, server, deadline=deadline):
                raise ValueError("the embedded server did not start")
        # A benchmark measures: nothing is retried.
        with Client(url, (data / "local-key").read_text().strip(), retry=RetryPolicy(attempts=1)) as client:
            style = client.upload_style(("s.png", _photo_png(32))).id
            job = client.submit(style, steps=1, size=16, batch=1).id
            state = until("the network to train", lambda: (s := client.job(job).state)
                          in ("succeeded", "failed", "cancelled") and s, 0.5)
            if state != "succeeded":
                raise ValueError(f"training the network {state}")

            # The bare forward: the same checkpoint, in this process, on the device the server uses.
            ckpt = data / "bench.ckpt"
            client.download(job, "checkpoint", ckpt)
            net, _ = load_network(ckpt)
            net = net.to(device)
            precision = stylize_precision("auto", device, net)  # as the stylise server resolves it, by the network
            (data / "bench.png").write_bytes(photo)
            image = load_tensor(data / "bench.png")
            stylize_tensor(net, image, precision=precision)  # untimed: the first call allocates and picks kernels

            def forward() -> float:
                t = time.perf_counter()
                stylize_tensor(net, image, precision=precision)
                return time.perf_counter() - t

            def request() -> dict:
                t0, wall = time.perf_counter(), time.time()  # wall clock: to place the records' times
                request_id = client.request_stylization(job, [("photo.png", photo)]).id
                while (s := client.stylization(request_id)).state in ("queued", "running"):
                    if time.monotonic() > deadline:
                        raise ValueError(f"stylisation {request_id} did not finish in time")
                    time.sleep(poll)
                noticed = time.perf_counter()
                if s.state != "succeeded":
                    raise ValueError(f"stylisation {request_id} {s.state}: {s.error}")
                png = client.output(request_id, s.outputs[0]["index"])
                t1 = time.perf_counter()
                if not png.startswith(b"\x89PNG"):
                    raise ValueError("the output is not a PNG")
                return {"id": request_id, "total": t1 - t0, "sent_at": wall, "noticed": noticed - t0,
                        "download": t1 - noticed}

            cold = request()
            # Bare forwards and warm requests take turns, so both see the same load on the machine.
            forwards, warm = [], []
            for _ in range(repeats):
                forwards.append(forward())
                warm.append(request())
            del net
            if device == "cuda":
                torch.cuda.empty_cache()
            records = _records(data, [w["id"] for w in [cold, *warm]])
            notes = _server_notes(data)

    bare = statistics.median(forwards)
    warm_total = statistics.median(w["total"] for w in warm)
    rows = [
        {"measure": f"bare forward, in-process (median of {repeats})", "ms": _ms(bare), "ratio": 1.0},
        {"measure": "request to PNG, cold (first request)", "ms": _ms(cold["total"]), "ratio": round(cold["total"] / bare, 2)},
        {"measure": f"request to PNG, warm (median of {repeats})", "ms": _ms(warm_total),
         "ratio": round(warm_total / bare, 2)},
    ]
    parts = _where(warm, records, notes)
    summary = {"image": f"{size}x{size}", "device": device, "precision": precision, "poll_s": poll, "rows": rows,
               "warm_overhead_ms": _ms(warm_total - bare),
               "warm_breakdown_ms": parts, "target_ratio": 1.5, "met": warm_total / bare < 1.5}
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    table = Table("measure", "ms", "x bare forward",
                  title=f"stylisation latency, {size}x{size} image, {device}, {'fp32' if precision == '32' else 'bf16'} "
                        f"(client polls every {poll * 1000:.0f} ms)")
    for r in rows:
        table.add_row(r["measure"], f"{r['ms']:.0f}", f"{r['ratio']:.2f}")
    out.print(table)
    split = Table("warm request, where the time went (medians)", "ms")
    for name, ms in parts.items():
        split.add_row(name, f"{ms:.0f}")
    out.print(split)
    out.print(f"service overhead: {warm_total / bare:.2f}x the bare forward, {summary['warm_overhead_ms']:.0f} ms "
              f"(target < 1.5x: {'met' if summary['met'] else 'not met'})")


def _records(data: Path, ids: list[str]) -> dict[str, dict]:
    """The stylisation records, read from the embedded server's local store."""
    found = {}
    for request_id in ids:
        for path in (data / "store").glob(f"**/{request_id}/request.json"):
            found[request_id] = json.loads(path.read_text())
    return found


def _server_notes(data: Path) -> dict[str, dict]:
    """What the stylise server's owner noted per request (its status file): when it handed the
    request to the server, when the answer came, and the server's own time for it."""
    notes = {}
    for path in (data / "work").glob("stylize-server-*.json"):
        for r in json.loads(path.read_text()).get("recent", []):
            if r.get("ok"):
                notes[r["id"]] = r
    return notes


def _where(warm: list[dict], records: dict[str, dict], notes: dict[str, dict]) -> dict[str, float]:
    """Medians of each stretch of the warm requests (ms), on one timeline (wall clock, one
    machine): the client's send, the record's creation, the request handed to the stylise
    server, its answer, the record's end, the client's poll that saw it, the PNG in hand."""
    stretches: dict[str, list[float]] = {}

    def add(name: str, seconds: float) -> None:
        stretches.setdefault(name, []).append(seconds)

    for w in warm:
        r, n = records.get(w["id"]), notes.get(w["id"])
        add("total", w["total"])
        if not (r and r.get("finished_at") and n):
            continue
        at = {"created": datetime.fromisoformat(r["created_at"]).timestamp() - w["sent_at"],
              "handed": n["sent_at"] - w["sent_at"], "answered": n["answered_at"] - w["sent_at"],
              "finished": datetime.fromisoformat(r["finished_at"]).timestamp() - w["sent_at"]}
        add("API: upload, image checks, quota -> record created", at["created"])
        add("queue and worker: record created -> handed to the stylise server", at["handed"] - at["created"])
        add("stylise server: handed -> answered", at["answered"] - at["handed"])
        add("  of which decode, stylize_tensor, PNG encode", n["seconds"])
        for part, seconds in (n.get("spent") or {}).items():
            add(f"    {part}", seconds)
        add("worker: answered -> output stored, record succeeded", at["finished"] - at["answered"])
        add("client: succeeded -> its poll sees it", w["noticed"] - at["finished"])
        add("client: GET the PNG", w["download"])
    return {name: _ms(statistics.median(v)) for name, v in stretches.items()}
