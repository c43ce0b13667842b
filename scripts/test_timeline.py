"""Where the test suite's wall time goes, from a timeline its run wrote (tests/conftest.py):

    CHECKERLESS_TEST_TIMELINE=/tmp/timeline.jsonl bash scripts/test.sh
    .venv/bin/python scripts/test_timeline.py /tmp/timeline.jsonl

Prints each test file's worker, start and end (seconds from the first test), busy seconds and
CPU seconds (the worker's own and its reaped children's), each worker's busy time, how many
workers were busy in each 30 s of the run (a tail of one or two is time lost: a long file
that started late, a candidate for LONGEST_FIRST in tests/conftest.py), and the files of 30 s
or more ranked by their busy time.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

LONG_S = 30  # the files ranked at the end: at least this busy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("timeline", type=Path)
    args = ap.parse_args()
    rows = [json.loads(line) for line in args.timeline.read_text().splitlines() if line.strip()]
    if not rows:
        raise SystemExit(f"{args.timeline}: no tests recorded")
    t0, t1 = min(r["start"] for r in rows), max(r["end"] for r in rows)
    files: dict[str, dict] = defaultdict(lambda: {"start": float("inf"), "end": 0.0, "busy": 0.0, "cpu": 0.0,
                                                  "workers": set()})
    for r in rows:
        f = files[r["test"].split("::", 1)[0]]
        f["start"], f["end"] = min(f["start"], r["start"]), max(f["end"], r["end"])
        f["busy"] += r["end"] - r["start"]
        f["cpu"] += r["cpu_s"]
        f["workers"].add(r["worker"])
    ranked = sorted(files.items(), key=lambda kv: -kv[1]["busy"])
    print(f"{len(rows)} tests in {len(files)} files over {t1 - t0:.0f} s")
    print("| file | worker | start s | end s | busy s | CPU s |\n| --- | --- | ---: | ---: | ---: | ---: |")
    for name, f in ranked:
        if f["busy"] >= 10:
            print(f"| {name} | {','.join(sorted(f['workers']))} | {f['start'] - t0:.0f} | {f['end'] - t0:.0f} "
                  f"| {f['busy']:.0f} | {f['cpu']:.0f} |")
    for worker in sorted({r["worker"] for r in rows}):
        mine = [r for r in rows if r["worker"] == worker]
        print(f"{worker}: busy {sum(r['end'] - r['start'] for r in mine):.0f} s, "
              f"last test ended at {max(r['end'] for r in mine) - t0:.0f} s")
    busy = []
    for lo in range(0, int(t1 - t0) + 1, 30):
        a, b = t0 + lo, t0 + lo + 30
        busy.append(f"{lo}:{sum(max(0.0, min(b, r['end']) - max(a, r['start'])) for r in rows) / 30:.1f}")
    print("workers busy per 30 s:", " ".join(busy))
    longest = [name for name, f in ranked if f["busy"] >= LONG_S]
    print(f"files of {LONG_S} s or more, longest first:", json.dumps(longest))


if __name__ == "__main__":
    main()
