"""One delivery attempt: connect to the vetted address (never re-resolve), POST, no redirects."""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from collections.abc import Callable

from damagelens.jobs.state import utcnow
from damagelens.schemas import WebhookAttempt
from damagelens.webhooks.guard import Resolver, Target, WebhookRefused, resolve_target, system_resolver
from damagelens.webhooks.signing import headers

Connect = Callable[[Target, float], socket.socket]
RESPONSE_BYTES = 64 * 1024


def connect(target: Target, timeout: float) -> socket.socket:
    sock = socket.create_connection((str(target.address), target.port), timeout=timeout)
    if target.scheme == "https":
        return ssl.create_default_context().wrap_socket(sock, server_hostname=target.host)
    return sock


def attempt(
    *,
    url: str,
    body: bytes,
    secret: str,
    msg_id: str,
    number: int,
    allow_http: bool,
    allowlist: list[str],
    timeout: float,
    resolver: Resolver = system_resolver,
    connector: Connect = connect,
) -> WebhookAttempt:
    """Never raises: the outcome, refused or not, is the attempt record."""
    started = time.perf_counter()

    def record(status_code: int | None = None, error: str | None = None, refused: bool = False) -> WebhookAttempt:
        ms = round((time.perf_counter() - started) * 1000, 1)
        return WebhookAttempt(attempt=number, at=utcnow(), status_code=status_code, error=error, refused=refused, duration_ms=ms)

    try:
        target = resolve_target(url, allow_http, allowlist, resolver)
    except WebhookRefused as exc:
        return record(error=str(exc), refused=True)
    except OSError as exc:
        return record(error=str(exc))
    try:
        sock = connector(target, timeout)
        conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
        conn.sock = sock  # the checked address, not a fresh lookup
        try:
            conn.request("POST", target.path, body=body, headers=headers(secret, msg_id, int(time.time()), body))
            response = conn.getresponse()
            response.read(RESPONSE_BYTES)
            status = response.status
        finally:
            conn.close()
    except (OSError, http.client.HTTPException) as exc:
        return record(error=f"{type(exc).__name__}: {exc}")
    if 200 <= status < 300:
        return record(status_code=status)
    note = "redirects are not followed" if 300 <= status < 400 else "non-2xx answer"
    return record(status_code=status, error=note)
