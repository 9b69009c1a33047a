"""`Idempotency-Key`: a retried submit returns the first answer instead of making a second job.

The first request claims the key with an atomic `SET NX` and stores its 202 answer; a duplicate
that arrives meanwhile waits for that answer. The fingerprint is a hash of what the request
means (form fields and file bytes), not of its raw bytes, because clients pick a new multipart
boundary on every retry. A failed first request releases the key so the client can retry; the
claim itself lives only `PENDING_SECONDS` and is extended while the first request works (a 200 MB
inspection can take minutes), so a gateway that dies mid-submit does not block the key for the
whole TTL and a slow one is never overtaken by its own retry.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable

import redis
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from damagelens_gateway.errors import ApiError

log = logging.getLogger(__name__)
PREFIX = "damagelens:idempotency:"
HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
WAIT_FOR_FIRST_SECONDS = 60.0
PENDING_SECONDS = int(2 * WAIT_FOR_FIRST_SECONDS)  # a submit takes seconds; a claim older than this is orphaned
POLL_SECONDS = 0.05

Produce = Callable[[], Awaitable[tuple[int, str, dict[str, str]]]]


def fingerprint(*parts: bytes | str | None) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = b"\x00none" if part is None else part.encode() if isinstance(part, str) else part
        digest.update(hashlib.sha256(data).digest())  # fixed-size per part: no ambiguity between parts
    return digest.hexdigest()


# Extend / release a pending claim only while it is still this request's (its token inside).
_EXTEND = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class Idempotency:
    def __init__(self, client: redis.Redis, ttl_seconds: int):
        self.client = client
        self.ttl = ttl_seconds
        self._extend = client.register_script(_EXTEND)
        self._release = client.register_script(_RELEASE)

    async def run(self, key: str | None, owner: str | None, request_hash: str, produce: Produce) -> Response:
        if key is None:
            return _response(*(await produce()))
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise ApiError(422, "invalid_idempotency_key", f"{HEADER} must be 1–{MAX_KEY_LENGTH} printable characters.")
        slot = f"{PREFIX}{owner or '-'}:{key}"
        pending = json.dumps({"state": "pending", "hash": request_hash, "token": uuid.uuid4().hex})
        deadline = asyncio.get_running_loop().time() + WAIT_FOR_FIRST_SECONDS
        while True:
            if await run_in_threadpool(self.client.set, slot, pending, nx=True, ex=min(self.ttl, PENDING_SECONDS)):
                return await self._first(slot, pending, request_hash, produce)
            raw = await run_in_threadpool(self.client.get, slot)
            if raw is not None:
                stored = json.loads(raw)
                if stored["hash"] != request_hash:
                    raise ApiError(
                        422,
                        "idempotency_key_reused",
                        f"This {HEADER} was used with a different request in the last {self.ttl // 3600} h; use a new key.",
                    )
                if stored["state"] == "done":
                    return _response(stored["status"], stored["body"], {**stored["headers"], REPLAYED_HEADER: "true"})
            if asyncio.get_running_loop().time() > deadline:
                raise ApiError(409, "idempotency_in_progress", f"A request with this {HEADER} is still running.", {"Retry-After": "1"})
            await asyncio.sleep(POLL_SECONDS)

    async def _first(self, slot: str, pending: str, request_hash: str, produce: Produce) -> Response:
        keeper = asyncio.create_task(self._keep_claim(slot, pending))
        try:
            status, body, headers = await produce()
        except BaseException:
            try:
                await run_in_threadpool(self._release, keys=[slot], args=[pending])
            except redis.RedisError as exc:  # the claim expires on its own; the request's own error matters more
                log.warning("idempotency claim not released", extra={"error": str(exc)})
            raise
        finally:
            keeper.cancel()
        done = {"state": "done", "hash": request_hash, "status": status, "body": body, "headers": headers}
        try:
            await run_in_threadpool(self.client.set, slot, json.dumps(done), ex=self.ttl)
        except redis.RedisError as exc:
            # The job exists: answering 503 "nothing was queued" would be false. A retry after the claim
            # expires may make a second job; that is logged here, and the answer is still the truth.
            log.warning("idempotent answer not stored; a late retry may submit again", extra={"error": str(exc)})
        return _response(status, body, headers)

    async def _keep_claim(self, slot: str, pending: str) -> None:
        ttl = min(self.ttl, PENDING_SECONDS)
        while True:
            await asyncio.sleep(ttl / 4)
            try:
                await run_in_threadpool(self._extend, keys=[slot], args=[pending, ttl])
            except redis.RedisError as exc:
                log.warning("idempotency claim not extended", extra={"error": str(exc)})


def _response(status: int, body: str, headers: dict[str, str]) -> Response:
    return Response(body, status_code=status, media_type="application/json", headers=headers)
