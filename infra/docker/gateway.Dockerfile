# syntax=docker/dockerfile:1
# DamageLens gateway: FastAPI under uvicorn. No torch in this image.
# Build from the repository root:
#   docker build -f infra/docker/gateway.Dockerfile -t damagelens/gateway:local .
#
# Base pinned by tag + digest (python 3.11.13, Debian bookworm, multi-arch index).
# Refresh: docker buildx imagetools inspect python:3.11-slim-bookworm

# The base is a build argument so that a machine without registry access can pass a local one
# (scripts/container-smoke.sh does); everyone else gets the pinned public image.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:86adf8dbadc3d6e82ee5dd2c74bec2e1c2467cdad47886280501df722372d2e1

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv
WORKDIR /app

# Dependencies first (own layer, cached until requirements change).
COPY requirements/gateway.txt requirements/gateway.txt
RUN pip install --no-cache-dir -r requirements/gateway.txt

# Project code, installed editable so that settings' REPO_ROOT is /app (the repo layout).
# The model weights are only needed by workers: drop them from the gateway image.
COPY shared/ shared/
COPY services/gateway/ services/gateway/
RUN pip install --no-cache-dir --no-deps -e ./shared -e ./services/gateway \
    && rm -rf shared/damagelens/registry/weights/* \
    && python -c "import damagelens_gateway, damagelens.settings" \
    && if python -c "import torch" 2>/dev/null; then echo "torch must not be in the gateway image" >&2; exit 1; fi

FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="damagelens-gateway" \
      org.opencontainers.image.description="DamageLens HTTP gateway (FastAPI, no torch)" \
      org.opencontainers.image.licenses="AGPL-3.0-only"

# Pango and a font for WeasyPrint (the PDF inspection report). DL3008: Debian point releases
# replace old package versions, so exact apt pins would break rebuilds (the base image is pinned).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /home/app --create-home --shell /usr/sbin/nologin app \
    && mkdir -p /var/lib/damagelens/storage /var/cache/damagelens \
    && chown -R app:app /var/lib/damagelens /var/cache/damagelens

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/app \
    HF_HUB_OFFLINE=1 \
    DAMAGELENS_HOST=0.0.0.0 \
    DAMAGELENS_PORT=8000 \
    DAMAGELENS_REGISTRY_PATH=/app/shared/damagelens/registry/registry.yaml \
    DAMAGELENS_STORAGE_DIR=/var/lib/damagelens/storage \
    DAMAGELENS_MODEL_CACHE_DIR=/var/cache/damagelens

WORKDIR /app
USER 10001:10001
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "__import__('urllib.request').request.urlopen('http://127.0.0.1:8000/healthz',timeout=4)"]

# Same command as the Procfile's `gateway:` line.
CMD ["damagelens", "serve"]
