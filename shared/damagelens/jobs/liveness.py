"""Worker heartbeats: how the reaper tells a dead worker (and a stage nobody holds) from a slow one.

Each worker process refreshes one Redis key with a short TTL from a background thread. The value
names the stages the process holds (executing, or reserved for a retry), so a stage whose task
was dropped while its worker lives on (a retry that could not be published during a Redis
restart) is found too. A process killed outright stops refreshing; its key expires.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

import redis
from pydantic import BaseModel

from damagelens.jobs.state import utcnow

log = logging.getLogger(__name__)
HEARTBEAT_PREFIX = "damagelens:worker:"


def stage_ref(job_id: str, stage: str) -> str:
    return f"{job_id}:{stage}"


class WorkerBeat(BaseModel):
    worker: str
    at: datetime
    holding: list[str]


def heartbeat_key(worker_id: str) -> str:
    return HEARTBEAT_PREFIX + worker_id


def publish_beat(client: redis.Redis, beat: WorkerBeat, ttl_seconds: int) -> None:
    client.set(heartbeat_key(beat.worker), beat.model_dump_json(), ex=ttl_seconds)


def live_workers(client: redis.Redis) -> dict[str, WorkerBeat]:
    """Every worker whose heartbeat has not expired, by id."""
    keys = list(client.scan_iter(match=HEARTBEAT_PREFIX + "*", count=500))
    if not keys:
        return {}
    beats = {}
    for raw in client.mget(keys):
        if raw:
            beat = WorkerBeat.model_validate_json(raw)
            beats[beat.worker] = beat
    return beats


class Heartbeat(threading.Thread):
    """Refreshes this process's key every `interval` until stopped; Redis errors are logged and retried."""

    def __init__(self, client: redis.Redis, worker_id: str, holding: Callable[[], list[str]], interval_seconds: float, ttl_seconds: int):
        super().__init__(name="damagelens-heartbeat", daemon=True)
        self.client, self.worker_id, self.holding = client, worker_id, holding
        self.interval, self.ttl = interval_seconds, ttl_seconds
        self._stop_event = threading.Event()

    def beat(self) -> None:
        publish_beat(self.client, WorkerBeat(worker=self.worker_id, at=utcnow(), holding=self.holding()), self.ttl)

    def run(self) -> None:
        failing = False
        while not self._stop_event.wait(self.interval):
            try:
                self.beat()
                if failing:
                    log.info("heartbeat restored", extra={"worker": self.worker_id})
                failing = False
            except Exception as exc:  # noqa: BLE001  (keep beating; the reaper copes with a gap)
                if not failing:
                    log.warning("heartbeat failed", extra={"worker": self.worker_id, "error": str(exc)})
                failing = True

    def stop(self, forget: bool = True) -> None:
        """Stop beating; `forget` deletes the key so the reaper need not wait for its TTL."""
        self._stop_event.set()
        if forget:
            try:
                self.client.delete(heartbeat_key(self.worker_id))
            except Exception:  # noqa: BLE001
                log.warning("could not delete heartbeat key", extra={"worker": self.worker_id})
