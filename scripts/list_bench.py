"""How long the first page of the job list takes with 10 jobs and with 10,000, on a local store
and on moto's S3 server (in this process, when moto is installed):

    .venv/bin/python scripts/list_bench.py [--jobs 10000] [--limit 10] [--repeat 20] [--no-s3] [--no-scan]

Jobs are made through Jobs.create (index entries, record, active marker), a few at a time;
the list is Jobs.list, as GET /v1/jobs calls it. "full scan" is what a list did before the
index: every key under jobs/ listed and every record read, one after another. "index listing"
is the page's ObjectStore.list_page alone. moto's server lists a bucket by going through every
object in it (moto/s3/models.py, list_objects), so on moto the listing grows with the bucket;
S3 itself answers StartAfter/MaxKeys from its sorted key index. A benchmark, not a test: it
prints a table and asserts nothing."""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.core.stores import Stores  # noqa: E402
from service.core.keys import Keys, new_id  # noqa: E402
from service.core.records import JobRecord  # noqa: E402
from service.core.storage import LocalStore, ObjectStore, S3Store  # noqa: E402


def fill(store: ObjectStore, n: int, owner: str) -> Stores:
    stores = Stores(store)
    stores.records.ensure_index()  # an empty store: the index's version marker, as the API writes at its start
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda _: stores.jobs.create(JobRecord(id=new_id(), owner=owner, config={"decoder": "deconv", "steps": 3},
                                                             style_id=new_id(), steps=3)), range(n)))
    return stores


def full_scan(store: ObjectStore, owner: str) -> list[JobRecord]:
    """Jobs.list before the index: every key under jobs/, every record read, then sorted."""
    records = [JobRecord.model_validate_json(store.get_bytes(k)) for k in store.list("jobs") if k.endswith("/job.json")]
    return [r for r in sorted(records, key=lambda r: r.created_at, reverse=True) if r.owner == owner]


def median_ms(fn, repeat: int) -> float:
    fn()  # warm: connections, caches
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="the large store's jobs (the small one has 10)")
    parser.add_argument("--limit", type=int, default=10, help="jobs on the page")
    parser.add_argument("--repeat", type=int, default=20, help="timed lists (the median is shown)")
    parser.add_argument("--no-s3", action="store_true", help="the local store only")
    parser.add_argument("--no-scan", action="store_true", help="skip timing the full scan")
    args = parser.parse_args()

    stores: list[tuple[str, callable]] = []
    tmp = Path(tempfile.mkdtemp(prefix="checkerless-list-bench-"))
    stores.append(("local", lambda n: LocalStore(tmp / f"store-{n}")))
    server = None
    if not args.no_s3:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError:
            print("moto is not installed: the local store only", file=sys.stderr)
        else:
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            host, port = server.get_host_and_port()
            stores.append(("s3 (moto)", lambda n: S3Store(bucket=f"bench-{n}-{uuid.uuid4().hex[:8]}",
                                                          endpoint_url=f"http://{host}:{port}", access_key="test",
                                                          secret_key="test", create_bucket=True)))
    rows = []
    try:
        for name, make in stores:
            base = None
            for n in (10, args.jobs):
                owner = new_id()
                started = time.perf_counter()
                stores = fill(make(n), n, owner)
                made_s = time.perf_counter() - started
                page = median_ms(lambda: stores.jobs.list(owner, limit=args.limit), args.repeat)
                listing = median_ms(lambda: stores.store.list_page(Keys.index_prefix("jobs", owner), limit=args.limit + 1),
                                    args.repeat)
                base = base or page
                scan = None
                if not args.no_scan:
                    scan = median_ms(lambda: full_scan(stores.store, owner), 1 if n > 10 else args.repeat)
                rows.append((name, n, page, page / base, listing, scan))
                print(f"  {name}: {n} jobs made in {made_s:.1f} s", file=sys.stderr)
    finally:
        if server is not None:
            server.stop()
    print(f"first page of {args.limit} (Jobs.list, median of {args.repeat}); full scan: the list before the index")
    print("| store | jobs | first page ms | vs 10 jobs | of which index listing ms | full scan ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, n, page, ratio, listing, scan in rows:
        print(f"| {name} | {n:,} | {page:.1f} | {ratio:.2f}x | {listing:.1f} | {'-' if scan is None else f'{scan:,.0f}'} |")


if __name__ == "__main__":
    main()
