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
