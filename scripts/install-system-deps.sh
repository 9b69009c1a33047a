#!/usr/bin/env bash
# System packages the test suite uses (Debian): Redis, Chromium for the browser test, and the
# docker-compose v1 parser for the compose check. Needs root; a no-op for what is already there.
set -euo pipefail
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v chromium >/dev/null || need+=(chromium chromium-driver)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v nginx >/dev/null || need+=(nginx-light)
command -v kubectl >/dev/null || need+=(kubectl)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps: not root; please install: ${need[*]}" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || true
for pkg in "${need[@]}"; do
  apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null || echo "install-system-deps: could not install $pkg" >&2
done
