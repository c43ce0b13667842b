#!/usr/bin/env bash
# The whole test suite, as CI runs it: set up .venv, then pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The end-to-end tests use the machine's Redis (their own database number); start one if
# none answers (the binary is installed on these machines).
if ! .venv/bin/python -c "import redis; redis.Redis(host='127.0.0.1', port=6379, socket_connect_timeout=2).ping()" 2>/dev/null; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  sleep 1
fi
# The browser tests drive Debian's chromium through Playwright (which cannot download its own).
if ! command -v chromium >/dev/null 2>&1; then
  apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
fi
# pytest-xdist workers: twice the cores (at most 4: the Redis databases tests claim), since the
# end-to-end tests spend much of their time waiting on other processes (on 2 cores, 4 workers
# took 933 s where 3 took 987); one torch thread each; a test file stays on one worker, so its
# module's servers are started once, in the order tests/conftest.py sets (xdist's own, most
# tests first, but for two long files it would leave to the end).
# CHECKERLESS_TEST_TIMELINE=FILE records each test's worker and times (scripts/test_timeline.py).
# CHECKERLESS_TEST_WORKERS=0 runs in this process alone. The 25 slowest tests are printed.
cores="$(nproc)"
workers="${CHECKERLESS_TEST_WORKERS:-$(( 2 * cores < 4 ? 2 * cores : 4 ))}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec .venv/bin/python -m pytest -n "$workers" --dist loadfile --no-loadscope-reorder --durations=25 "$@"
