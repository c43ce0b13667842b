#!/usr/bin/env bash
# Create .venv at the repository root and install checkerless with its test tools, and its
# Python client library (clients/python).
# torch==2.14.1 / torchvision==0.29.1 are pinned in pyproject.toml: on these machines pip takes
# them from local disk; the install is idempotent and quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import models, service, checkerless_client, pytest" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.installed ] || [ clients/python/pyproject.toml -nt .venv/.installed ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  # The client library (its own distribution; the CLI's `jobs`, `content-sets` and demo use it).
  # Not a dependency in pyproject.toml: it is not on PyPI, and pip would look for it there.
  .venv/bin/python -m pip install --quiet -e clients/python
  .venv/bin/python -m pip install --quiet -e '.[dev]'
  touch .venv/.installed
fi
# onnxruntime-web for the live page (/ui/live.html), pinned in service/api/web/package-lock.json
# and served by the API from node_modules (no CDN). Skipped, with a warning, where npm is absent:
# the API and every other page work without it; the live page says it is missing.
if command -v npm >/dev/null 2>&1; then
  if [ ! -f service/api/web/node_modules/onnxruntime-web/package.json ] \
     || [ service/api/web/package-lock.json -nt service/api/web/node_modules/.package-lock.json ]; then
    (cd service/api/web && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  fi
else
  echo "setup: npm not found; the live page (/ui/live.html) needs onnxruntime-web: install Node.js and npm, then rerun" >&2
fi
