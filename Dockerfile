# syntax=docker/dockerfile:1
#
# One image for the API and every worker (docker-compose.yml picks the command).
#
# No CUDA base image is needed: the torch wheels on PyPI for Linux x86_64 are CUDA builds
# that bring the CUDA runtime, cuDNN, NCCL, ... as nvidia-* wheels. The host needs only the
# NVIDIA driver and the NVIDIA Container Toolkit; Compose's GPU reservation mounts the driver
# into the worker containers. The same image runs on CPU where no GPU is reserved.

# onnxruntime-web for the live page (/ui/live.html), from the npm registry at the version
# service/api/web/package-lock.json pins; only its runtime files go into the image (below).
FROM node:20-slim AS web
WORKDIR /web
COPY service/api/web/package.json service/api/web/package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# An unprivileged user owns the scratch folder; nothing runs as root.
RUN groupadd --system --gid 10001 checkerless \
 && useradd --system --uid 10001 --gid checkerless --create-home \
        --home-dir /home/checkerless --shell /usr/sbin/nologin checkerless

WORKDIR /app

# Dependencies first, in their own layer (torch and its CUDA wheels are several GB), so a
# code change does not reinstall them: install the project with empty packages, then drop
# the project itself and keep its dependencies (pinned in pyproject.toml).
COPY pyproject.toml README.md ./
RUN mkdir -p models workers service \
 && touch models/__init__.py workers/__init__.py service/__init__.py \
 && pip install --no-cache-dir . \
 && pip uninstall -y checkerless \
 && rm -rf models workers service build ./*.egg-info

# The client library (clients/python; it brings httpx): the CLI's `jobs` and `content-sets` use it.
COPY clients/python ./clients/python
RUN pip install --no-cache-dir ./clients/python && rm -rf clients

# The code.
COPY models ./models
COPY workers ./workers
COPY service ./service
# The files service/api/main.py's ORT_FILES serves, where it looks for them (the API runs from
# /app, so /app/service is the copy it imports).
COPY --from=web /web/node_modules/onnxruntime-web/dist/ort.wasm.min.js \
     /web/node_modules/onnxruntime-web/dist/ort.webgpu.min.js \
     /web/node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.mjs \
     /web/node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm \
     /web/node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.asyncify.mjs \
     /web/node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.asyncify.wasm \
     ./service/api/web/node_modules/onnxruntime-web/dist/
RUN pip install --no-cache-dir --no-deps . \
 && rm -rf build ./*.egg-info \
 && mkdir -p /data \
 && chown checkerless:checkerless /data

# /data: scratch and local checkpoints (a volume per service in docker-compose.yml; a new
# named volume takes this folder's owner). HOME holds matplotlib's and torch's caches.
# UVICORN_TIMEOUT_KEEP_ALIVE: idle connections' lifetime, as `checkerless serve` keeps them
# (service/cli/launch.py KEEP_ALIVE_S says why).
ENV CHECKERLESS_DATA_DIR=/data \
    HOME=/home/checkerless \
    UVICORN_TIMEOUT_KEEP_ALIVE=75

USER checkerless

EXPOSE 8000

# Default: the API. Workers run `checkerless worker --queues ... --concurrency ...`.
CMD ["uvicorn", "service.api.main:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000"]
