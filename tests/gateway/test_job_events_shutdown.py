"""The gateway's shutdown must not wait on Redis: a CI run once hung for good in the app's
lifespan exit while the pub/sub listener was being cancelled.

The peer here is a real TCP server that accepts connections and never answers a byte, the way a
Redis behind a dead network path or a stopped (SIGSTOP) process looks to a client.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from damagelens_gateway.job_events import CLOSE_SECONDS, JobEvents

pytestmark = pytest.mark.integration


@pytest.fixture
def silent_server() -> Iterator[str]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def test_stop_returns_when_redis_never_answers(silent_server: str) -> None:
    async def scenario() -> float:
        events = JobEvents(silent_server)
        task = events.start()
        await asyncio.sleep(1.5)  # connected, subscribed, and inside a read that gets no answer
        started = time.monotonic()
        await JobEvents.stop(task)
        return time.monotonic() - started

    took = asyncio.run(scenario())
    # A bound, not a speed target: without one this waited forever.
    assert took <= CLOSE_SECONDS + 2


def test_stop_ends_a_healthy_listener(redis_url: str) -> None:
    async def scenario() -> tuple[bool, bool]:
        events = JobEvents(redis_url)
        task = events.start()
        await asyncio.wait_for(events.connected.wait(), timeout=10)
        await JobEvents.stop(task)
        return task.done(), events.connected.is_set()

    done, still_connected = asyncio.run(scenario())
    assert done
    assert not still_connected
