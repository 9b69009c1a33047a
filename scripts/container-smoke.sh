#!/usr/bin/env bash
# Build DamageLens' images and run `docker compose up` for real, through podman's Docker API, on a
# machine with no Docker daemon and no registry (see ../shared/notes/containers.md), then push real
# photos through the UI's nginx origin as a user would, and `docker compose down -v`.
#
#   sudo scripts/container-smoke.sh         # or: make test-containers
#
# What it does, in order (each step is skipped when its result is already there):
#   1. installs podman, runc, netavark, aardvark-dns, iptables (netavark needs it), catatonit (`init: true`), mmdebstrap and
#      docker-compose (Debian packages);
#   2. bootstraps a Debian 12 base once with mmdebstrap and caches it as a local image;
#   3. builds local stand-ins for the public images that cannot be pulled here (python, node, nginx,
#      redis, and moto's S3 server in MinIO's place), from that base;
#   4. builds the project's gateway, worker and frontend images with those bases as build arguments,
#      pip reading this machine's local package folders (mounted read-only) so torch is not fetched;
#   5. `docker-compose up` with infra/compose.standins.yml, waits for every health check, runs
#      scripts/container_smoke_client.py against the nginx origin, and tears everything down.
# Timings and image sizes are printed and written to var/container-smoke/report.json.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

CACHE=${DAMAGELENS_CONTAINER_CACHE:-/var/cache/damagelens-containers}
PROJECT=${COMPOSE_PROJECT_NAME:-damagelenssmoke}
OUT=$REPO/var/container-smoke
STANDIN=localhost/damagelens-standin
HEALTH_TIMEOUT=${SMOKE_HEALTH_TIMEOUT:-900}
# The PyTorch CPU index is not reachable from these machines; PyPI's (CUDA-bundling) torch runs on
# CPU too. Elsewhere, TORCH_VARIANT=cpu gives the small CPU image.
TORCH_VARIANT=${TORCH_VARIANT:-cuda}
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
mkdir -p "$CACHE" "$OUT"
: > "$OUT/timings.tsv"

log() { printf '[container-smoke %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
now() { date +%s; }
timed() {  # timed NAME CMD...: run CMD, record its wall time
  local name=$1 start
  shift
  start=$(now)
  "$@"
  printf '%s\t%s\n' "$name" "$(($(now) - start))" >> "$OUT/timings.tsv"
  log "$name: $(($(now) - start)) s"
}

# 1. engine ------------------------------------------------------------------------------------
install_engine() {
  local need=()
  for pair in podman:podman runc:runc mmdebstrap:mmdebstrap docker-compose:docker-compose iptables:iptables; do
    command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
  done
  [ -x /usr/lib/podman/netavark ] || [ -x /usr/libexec/podman/netavark ] || need+=(netavark aardvark-dns)
  # compose's `init: true` (the workers) needs podman's init binary, only a Recommends of podman
  [ -x /usr/libexec/podman/catatonit ] || need+=(catatonit)
  if [ ${#need[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || { echo "container-smoke: need root to install ${need[*]}" >&2; exit 2; }
    log "installing ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }
  fi
  # crun fails on this VM's hybrid cgroups and the VM forbids raising rlimits: runc + lower ulimits.
  if ! grep -qs 'runtime = "runc"' /etc/containers/containers.conf; then
    mkdir -p /etc/containers
    cp "$REPO/infra/standins/containers.conf" /etc/containers/containers.conf
  fi
}

SERVICE_PID=""
start_service() {
  export DOCKER_HOST="unix://$CACHE/podman.sock"
  rm -f "$CACHE/podman.sock"
  podman system service --time=0 "$DOCKER_HOST" > "$OUT/podman-service.log" 2>&1 &
  SERVICE_PID=$!
  for _ in $(seq 50); do [ -S "$CACHE/podman.sock" ] && return 0; sleep 0.2; done
  echo "container-smoke: podman's Docker API socket did not appear" >&2
  exit 1
}

COMPOSE=(docker-compose -p "$PROJECT" -f docker-compose.yml -f infra/compose.standins.yml)
HEALTH_PID=""
cleanup() {
  local rc=$?
  [ -n "$HEALTH_PID" ] && kill "$HEALTH_PID" 2>/dev/null || true
  if [ -n "${DOCKER_HOST:-}" ] && [ "${SMOKE_KEEP:-0}" != 1 ]; then
    "${COMPOSE[@]}" logs --no-color > "$OUT/compose.log" 2>&1 || true
    "${COMPOSE[@]}" down -v --remove-orphans > /dev/null 2>&1 || true
  fi
  [ -n "$SERVICE_PID" ] && kill "$SERVICE_PID" 2>/dev/null || true
  if [ $rc -ne 0 ]; then log "FAILED (exit $rc); compose logs in $OUT/compose.log"; fi
  exit $rc
}
trap cleanup EXIT

# The worker build's peak: the engine holds the layer being committed about three times (the build
# container's files, the diff blob, the committed layer), so the CUDA-bundling torch (~7 GB) goes in
# as three layers (infra/docker/worker_layers.py). Peak disk use of a full build from the stand-ins,
# df every 3 s: 27 GB as one layer (the 32 GB asked then refused a CI machine with 29), 16.7 GB as
# three (2026-12-04, evening; final worker image 7.5 GB). Dangling images of earlier builds always go
# first (nothing uses them); when that is not enough, this project's own earlier images go too (they
# are rebuilt below). Then at least NEED_GB must be free.
NEED_GB=${SMOKE_NEED_GB:-21}
free_gb() { df -BG --output=avail /var/lib | tail -n 1 | tr -dc '0-9'; }
ensure_disk() {
  podman image prune -f > /dev/null || true
  log "$(free_gb) GB free under /var/lib"
  [ "$(free_gb)" -ge "$NEED_GB" ] && return 0
  log "fewer than $NEED_GB GB free: removing this project's earlier images (rebuilt below)"
  podman rmi -f damagelens/worker:local-cpu damagelens/gateway:local damagelens/frontend:local > /dev/null 2>&1 || true
  podman image prune -f > /dev/null || true
  [ "$(free_gb)" -ge "$NEED_GB" ] || { echo "container-smoke: need ${NEED_GB} GB free under /var/lib, have $(free_gb) GB" >&2; exit 1; }
}

# 2. base --------------------------------------------------------------------------------------
bootstrap_base() {
  podman image exists "$STANDIN/debian:bookworm" && return 0
  log "bootstrapping Debian 12 with mmdebstrap (once; cached as $STANDIN/debian:bookworm)"
  # mmdebstrap picks its output format from the file name, and `.part` is no tar name: without
  # --format it wrote a directory, which the old size check then took for a finished tar
  [ -d "$CACHE/rootfs.tar" ] && rm -rf "$CACHE/rootfs.tar"
  if [ ! -s "$CACHE/rootfs.tar" ]; then
    rm -rf "$CACHE/rootfs.tar.part"
    mmdebstrap --quiet --format=tar --variant=minbase --include=ca-certificates bookworm "$CACHE/rootfs.tar.part"
    mv "$CACHE/rootfs.tar.part" "$CACHE/rootfs.tar"
  fi
  podman import "$CACHE/rootfs.tar" "$STANDIN/debian:bookworm" > /dev/null
}

# Builds reach apt and pip only with the host's CA bundle; pip also reads this machine's pip config
# and local package folders (find-links and file:// indexes), mounted read-only where they exist.
BUILD_MOUNTS=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
for path in /etc/xdg/pip /etc/pip.conf /opt/wheels /opt/pypi /opt/pypi-more; do
  [ -e "$path" ] && BUILD_MOUNTS+=(-v "$path:$path:ro")
done
build() {  # build TAG DOCKERFILE CONTEXT [ARGS...]
  local tag=$1 file=$2 context=$3
  shift 3
  podman build --quiet --format docker --network host "${BUILD_MOUNTS[@]}" --build-arg "DEBIAN_IMAGE=$STANDIN/debian:bookworm" \
    -f "$file" -t "$tag" "$@" "$context" > "$OUT/build-$(echo "$tag" | tr '/:' '__').log" 2>&1 \
    || { tail -n 40 "$OUT/build-$(echo "$tag" | tr '/:' '__').log" >&2; return 1; }
}

# 3. stand-ins -----------------------------------------------------------------------------------
build_standins() {
  build "$STANDIN/python:3.11" infra/standins/python.Dockerfile infra/standins
  local nodectx="$CACHE/node-context"
  rm -rf "$nodectx" && mkdir -p "$nodectx"
  cp "$(command -v node)" "$nodectx/node"
  cp -r "$(npm root -g)/npm" "$nodectx/npm"
  cp infra/standins/node.Dockerfile "$nodectx/"
  build "$STANDIN/node:20" "$nodectx/node.Dockerfile" "$nodectx"
  build "$STANDIN/nginx:bookworm" infra/standins/nginx.Dockerfile infra/standins
  build "$STANDIN/redis:bookworm" infra/standins/redis.Dockerfile infra/standins
  build "$STANDIN/s3:moto" infra/standins/s3.Dockerfile . --build-arg "PYTHON_IMAGE=$STANDIN/python:3.11"
}

# 4. project images ------------------------------------------------------------------------------
build_project() {
  local py=(--build-arg "PYTHON_IMAGE=$STANDIN/python:3.11")
  timed build_gateway build damagelens/gateway:local infra/docker/gateway.Dockerfile . "${py[@]}"
  timed build_worker build damagelens/worker:local-cpu infra/docker/worker.Dockerfile . "${py[@]}" --build-arg "TORCH_VARIANT=$TORCH_VARIANT"
  timed build_frontend build damagelens/frontend:local infra/docker/frontend.Dockerfile . \
    --build-arg "NODE_IMAGE=$STANDIN/node:20" --build-arg "NGINX_IMAGE=$STANDIN/nginx:bookworm"
}

# 5. run -----------------------------------------------------------------------------------------
free_port() { "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Podman runs health checks from systemd timers, and there is no systemd here: run them ourselves,
# each at its own configured interval (`podman healthcheck run` records the result that compose's
# `service_healthy` waits for; running them faster would use up their retries early).
duration_seconds() {  # Go durations as podman prints them: 5s, 1m0s, 1m30s
  local d=$1 total=0
  [[ $d =~ ([0-9]+)m ]] && total=$((BASH_REMATCH[1] * 60))
  [[ $d =~ ([0-9.]+)s$ ]] && total=$((total + ${BASH_REMATCH[1]%.*}))
  echo $((total > 0 ? total : 1))
}

drive_healthchecks() {
  declare -A due=()
  local c interval t
  while true; do
    t=$(now)
    for c in $(podman ps --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Names}}'); do
      [ "${due[$c]:-0}" -le "$t" ] || continue
      interval=$(podman inspect --format '{{if .Config.Healthcheck}}{{.Config.Healthcheck.Interval}}{{end}}' "$c" 2> /dev/null || true)
      [ -n "$interval" ] || { due[$c]=$((t + 3600)); continue; }
      due[$c]=$((t + $(duration_seconds "$interval")))
      podman healthcheck run "$c" > /dev/null 2>&1 || true
    done
    sleep 1
  done
}

wait_healthy() {
  local deadline=$(($(now) + HEALTH_TIMEOUT)) pending
  while true; do
    pending=""
    for c in $(podman ps -a --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Names}}'); do
      local health state
      state=$(podman inspect --format '{{.State.Status}}' "$c")
      health=$(podman inspect --format '{{if .State.Healthcheck}}{{.State.Healthcheck.Status}}{{end}}' "$c" 2> /dev/null || true)
      case "$state/$health" in
        running/healthy | running/ | exited/*) ;;
        *) pending="$pending $c($state/${health:-none})" ;;
      esac
    done
    [ -z "$pending" ] && return 0
    if [ "$(now)" -gt "$deadline" ]; then
      echo "container-smoke: not healthy after ${HEALTH_TIMEOUT}s:$pending" >&2
      return 1
    fi
    sleep 5
  done
}

run_stack() {
  export GATEWAY_PORT=${GATEWAY_PORT:-$(free_port)} FRONTEND_PORT=${FRONTEND_PORT:-$(free_port)}
  export MINIO_API_PORT=${MINIO_API_PORT:-$(free_port)} MINIO_CONSOLE_PORT=${MINIO_CONSOLE_PORT:-$(free_port)}
  "${COMPOSE[@]}" down -v --remove-orphans > /dev/null 2>&1 || true
  drive_healthchecks &
  HEALTH_PID=$!
  timed compose_up "${COMPOSE[@]}" up -d --no-build
  timed healthy wait_healthy
  "${COMPOSE[@]}" ps
  # compose turns API keys on (DAMAGELENS_AUTH=on): make one the way an operator would.
  local key
  key=$("${COMPOSE[@]}" exec -T gateway damagelens keys create "container-smoke-$(now)" 2> /dev/null | tail -n 1)
  [ -n "$key" ] || { echo "container-smoke: could not create an API key in the gateway container" >&2; return 1; }
  timed smoke_client "$PYTHON" scripts/container_smoke_client.py --base-url "http://127.0.0.1:$FRONTEND_PORT" --out "$OUT" --api-key "$key"
}

report() {
  "$PYTHON" - "$OUT" <<'PY'
import json, subprocess, sys
out = sys.argv[1]
timings = dict(line.split("\t") for line in open(f"{out}/timings.tsv").read().splitlines() if line)
sizes = {}
for ref in ("damagelens/gateway:local", "damagelens/worker:local-cpu", "damagelens/frontend:local"):
    size = subprocess.run(["podman", "image", "inspect", "--format", "{{.Size}}", ref], capture_output=True, text=True).stdout.strip()
    sizes[ref] = round(int(size) / 1e6) if size.isdigit() else None
report = {"seconds": {k: int(v) for k, v in timings.items()}, "image_mb": sizes}
json.dump(report, open(f"{out}/report.json", "w"), indent=2)
print(json.dumps(report, indent=2))
PY
}

start_all=$(now)
install_engine
start_service
ensure_disk
timed base bootstrap_base
timed standins build_standins
build_project
run_stack
printf '%s\t%s\n' total "$(($(now) - start_all))" >> "$OUT/timings.tsv"
report
log "OK: the containerised stack answered real photos end to end"
