"""Job-change notifications for live-update streams: one Redis pub/sub subscription per gateway
process, fanned out in memory to the streams waiting on each job.

The stage-write scripts publish the job id on `EVENTS_CHANNEL` (damagelens.jobs.store), so an
open stream costs nothing until its job changes. A stream still re-reads its job every
`sse_fallback_poll_seconds`, so a message lost while the subscription reconnects (Redis
restart) only delays an update, never drops it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

from damagelens.jobs.store import EVENTS_CHANNEL

log = logging.getLogger(__name__)
RECONNECT_SECONDS = 1.0
# Closing a connection cancelled mid-read can wait on a socket that never answers; shutdown must not.
CLOSE_SECONDS = 2.0


class JobEvents:
    def __init__(self, redis_url: str):
        self.redis_url = redis_url
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self.connected = asyncio.Event()

    def start(self) -> asyncio.Task:
        """Start listening in the running loop; the caller (the app's lifespan) stops that task."""
        return asyncio.create_task(self._listen(), name="job-events")

    @staticmethod
    async def stop(task: asyncio.Task) -> None:
        """Cancel the listener and give it a bounded time to close its connection, so the app's
        shutdown never hangs on Redis (a hung close is logged and left to the loop's teardown)."""
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=CLOSE_SECONDS + 1)
        if not done:
            log.warning("job events listener did not stop in time; leaving it to the loop's teardown")
            return
        if not task.cancelled() and task.exception() is not None:
            log.warning("job events listener ended with an error", extra={"error": str(task.exception())})

    @contextmanager
    def watch(self, job_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever the job changes; clear it *before* re-reading the job, so a change
        published during the read sets it again and is never missed."""
        event = asyncio.Event()
        self._waiters[job_id].add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[job_id]

    def notify(self, job_id: str) -> None:
        for event in self._waiters.get(job_id, ()):
            event.set()

    async def _listen(self) -> None:
        while True:
            client = aioredis.Redis.from_url(self.redis_url, decode_responses=True, socket_connect_timeout=2, health_check_interval=15)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(EVENTS_CHANNEL)
                self.connected.set()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message and message.get("type") == "message":
                        self.notify(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  (Redis away: streams fall back to their slow poll)
                log.warning("job events subscription lost; reconnecting", extra={"error": str(exc)})
            finally:
                self.connected.clear()
                await _close_quietly(pubsub, client)
            # Whatever changed meanwhile was not announced: wake every stream to re-read its job.
            for job_id in list(self._waiters):
                self.notify(job_id)
            await asyncio.sleep(RECONNECT_SECONDS)


async def _close_quietly(pubsub: PubSub, client: aioredis.Redis) -> None:
    """Close the subscription and its client within CLOSE_SECONDS; errors and timeouts are ignored
    because the connection is being dropped either way."""
    try:
        await asyncio.wait_for(_close(pubsub, client), timeout=CLOSE_SECONDS)
    except Exception:  # noqa: BLE001  (TimeoutError included)
        pass


async def _close(pubsub: PubSub, client: aioredis.Redis) -> None:
    await pubsub.aclose()
    await client.aclose()
