"""The API's memory while an archive streams in (POST /v1/content-sets/archive): a real uvicorn
process, a deterministic tar of incompressible PNGs made on the fly as the request body (never
held whole, never written to disk by this script), and the API process's RSS sampled from
/proc while it uploads:

    .venv/bin/python scripts/upload_memory.py [--size 1G] [--store local|moto] [--json]

--store moto runs moto's S3 server in this process (its parts are held here, not in the API),
so the API goes through S3's multipart upload in parts of CHECKERLESS_UPLOAD_PART_BYTES. The
API is started without workers (`checkerless serve` would start two, which would take the
CPU this measures); nothing validates the archive. A measurement, not a test: it prints a
table (tests/e2e/test_upload_memory.py runs it small and bounds the growth).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.core.auth import KeyStore  # noqa: E402
from service.core.settings import Settings  # noqa: E402
from service.core.storage import open_store  # noqa: E402

MiB = 1024 * 1024
MEMBER_SIDE = 1024  # px: a 1024x1024 noise PNG stored without compression, about 3 MiB
DISTINCT = 8  # different members made, then repeated: enough that no two neighbours match
SEND_CHUNK = 1 * MiB


def parse_size(text: str) -> int:
    units = {"K": 1024, "M": MiB, "G": 1024 * MiB}
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


def noise_pngs() -> list[bytes]:
    out = []
    for seed in range(DISTINCT):
        pixels = np.random.default_rng(seed).integers(0, 256, (MEMBER_SIDE, MEMBER_SIDE, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "PNG", compress_level=0)
        out.append(buf.getvalue())
    return out


def tar_plan(size: int, pngs: list[bytes]) -> tuple[int, int]:
    """(members, total bytes) of the tar of at least `size` bytes that tar_stream makes."""
    members, total = 0, 1024  # the two zero blocks that end a tar
    while total < size:
        data = len(pngs[members % len(pngs)])
        total += 512 + data + (-data % 512)
        members += 1
    return members, total


def tar_stream(members: int, pngs: list[bytes]) -> Iterator[bytes]:
    """The tar, a header and a member at a time (what tarfile writes, without a file)."""
    for i in range(members):
        data = pngs[i % len(pngs)]
        info = tarfile.TarInfo(f"noise/{i:06d}.png")
        info.size, info.mtime = len(data), 0
        yield info.tobuf(format=tarfile.USTAR_FORMAT)
        for start in range(0, len(data), SEND_CHUNK):
            yield data[start:start + SEND_CHUNK]
        yield bytes(-len(data) % 512)
    yield bytes(1024)


def rss(pid: int, field: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith(field + ":")).split()[1]) * 1024


class Sampler(threading.Thread):
    """The process's RSS every `every` seconds; the peak seen."""

    def __init__(self, pid: int, every: float = 0.02):
        super().__init__(daemon=True)
        self.pid, self.every, self.peak, self.done = pid, every, 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, rss(self.pid))
            time.sleep(self.every)

    def stop(self) -> int:
        self.done.set()
        self.join()
        return self.peak


@contextmanager
def moto_server() -> Iterator[str]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@contextmanager
def api_process(env: dict[str, str]) -> Iterator[tuple[httpx.Client, int]]:
    """uvicorn with the API alone on a free port; (a client holding a new key, its pid)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHECKERLESS_")} | env
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "service.api.main:create_app", "--factory",
                             "--port", str(port), "--log-level", "warning"], cwd=ROOT, env=clean)
    settings = Settings(**{k.removeprefix("CHECKERLESS_").lower(): v for k, v in env.items()})
    token = KeyStore(open_store(settings)).create(name="upload-memory")[1]
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600, headers={"X-API-Key": token})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/v1/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the API did not start")
            time.sleep(0.2)
        yield client, proc.pid
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=30)


def measure(size: int, store: str) -> dict:
    pngs = noise_pngs()
    members, total = tar_plan(size, pngs)
    with tempfile.TemporaryDirectory(prefix="upload-memory-") as data, \
            (moto_server() if store == "moto" else _nothing()) as endpoint:
        env = {"CHECKERLESS_DATA_DIR": data, "CHECKERLESS_MAX_ARCHIVE_BYTES": str(max(total, 1))}
        if store == "moto":
            env |= {"CHECKERLESS_STORE": "s3", "CHECKERLESS_S3_ENDPOINT_URL": endpoint,
                    "CHECKERLESS_S3_BUCKET": f"mem-{uuid.uuid4().hex[:8]}", "CHECKERLESS_S3_ACCESS_KEY": "test",
                    "CHECKERLESS_S3_SECRET_KEY": "test"}
        with api_process(env) as (client, pid):
            client.get("/v1/content-sets")  # the first request's imports and lazy set-up, before the baseline
            start = rss(pid)
            sampler = Sampler(pid)
            sampler.start()
            began = time.monotonic()
            r = client.post("/v1/content-sets/archive", params={"name": "noise"}, content=tar_stream(members, pngs),
                            headers={"Content-Length": str(total), "Content-Type": "application/octet-stream"})
            seconds = time.monotonic() - began
            peak = max(sampler.stop(), rss(pid))
            if r.status_code != 202:
                raise SystemExit(f"the upload was refused: HTTP {r.status_code} {r.text}")
            stored = r.json()["progress"]["total_bytes"]
    return {"store": store, "bytes_sent": total, "bytes_stored": stored, "members": members, "rss_start": start,
            "rss_peak": peak, "growth": peak - start, "seconds": seconds, "mib_per_s": total / MiB / seconds}


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1G", help="archive size: bytes, or with K, M, G (binary) [1G]")
    parser.add_argument("--store", choices=("local", "moto"), action="append",
                        help="the API's store; repeat for both [local]")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    rows = [measure(parse_size(args.size), store) for store in args.store or ["local"]]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("| store | bytes sent | members | RSS at start | peak RSS | peak - start | MiB/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['store']} | {r['bytes_sent']:,} | {r['members']} | {r['rss_start'] / MiB:.1f} MiB | "
              f"{r['rss_peak'] / MiB:.1f} MiB | {r['growth'] / MiB:.1f} MiB | {r['mib_per_s']:.0f} |")


if __name__ == "__main__":
    main()
