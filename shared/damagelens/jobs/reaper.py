"""The reaper: re-enqueues running stages whose worker died, seconds after the death instead of
after the broker's visibility timeout.

One per deployment does the work: a Redis lock (SET NX with expiry, renewed while held) elects
it, so a second replica only waits. Each tick reads the running-stages index and the live
heartbeats. A stage is orphaned when its worker's heartbeat has expired, or when its worker is
alive but has not held the stage for a whole heartbeat TTL (its task was dropped, e.g. a retry
that could not be published while Redis restarted). The stage goes back to `queued` (its attempt
stays counted, so the attempt limit still stops a photo that kills every worker) only if the dead
worker still holds it, and the same task is sent again.

Messages a dead worker had taken from the broker but not acknowledged (the task it was running,
retries waiting on their countdown) would otherwise come back only after the broker's visibility
timeout: an unacknowledged stage message that no live worker lists, though all have beaten since, is put back
at the head of its queue, headers intact (kombu's own restore). A stage restored that way is not
sent a second time. Any later redelivery by the broker finds the stage finished and does nothing.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Protocol

import redis
from pydantic import BaseModel

from damagelens.jobs.liveness import WorkerBeat, live_workers, stage_ref
from damagelens.jobs.state import utcnow
from damagelens.jobs.store import KEY_PREFIX, JobNotFound, JobStore, RunningStage
from damagelens.schemas import Stage, StageTask, Status
from damagelens.settings import Settings

log = logging.getLogger(__name__)
LOCK_KEY = "damagelens:reaper:lock"
AUDIT_SECONDS = 30.0
ALIVE_PREFIX = "damagelens:reaper:alive:"


class UnackedMessage(BaseModel):
    tag: str
    delivered_at: float  # unix time
    payload: dict | None  # a StageTask payload, None for messages of other tasks


class Broker(Protocol):
    def enqueue(self, task: StageTask) -> None: ...

    def unacked(self) -> list[UnackedMessage]: ...

    def restore(self, tag: str) -> None: ...

    def waiting(self) -> list[dict]: ...


_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class Reaper:
    def __init__(self, jobs: JobStore, broker: Broker, settings: Settings, node: str | None = None, host: str = "local"):
        self.jobs, self.broker = jobs, broker
        self.interval = settings.reaper_interval_seconds
        self.ttl = settings.heartbeat_ttl_seconds
        self.lock_ms = int(max(3 * self.interval, self.ttl) * 1000)
        # A worker records a message it takes within moments; a heartbeat taken this long after the
        # delivery (or the stage's start) that does not list it means that worker does not hold it.
        # Comparing with the beat's own time, not the reaper's clock, keeps a worker starved of CPU
        # (its beats late) from looking as if it had dropped its work.
        self.margin = settings.heartbeat_interval_seconds
        self.node = node or uuid.uuid4().hex
        self.alive_key = ALIVE_PREFIX + host
        self._renew = jobs.client.register_script(_RENEW)
        self._unheld_since: dict[tuple[str, Stage], float] = {}
        self._quiet_until = 0.0
        self.audit_every = AUDIT_SECONDS
        self._next_audit = time.monotonic() + AUDIT_SECONDS
        self._missing: set[tuple[str, Stage]] = set()

    def is_leader(self) -> bool:
        client = self.jobs.client
        if self._renew(keys=[LOCK_KEY], args=[self.node, self.lock_ms]) == 1:
            return True
        return bool(client.set(LOCK_KEY, self.node, nx=True, px=self.lock_ms))

    def release(self) -> None:
        try:
            if self.jobs.client.get(LOCK_KEY) == self.node:
                self.jobs.client.delete(LOCK_KEY)
        except redis.RedisError:
            pass

    def orphans(self, now: float, beats: dict[str, WorkerBeat]) -> list[RunningStage]:
        held = {ref for beat in beats.values() for ref in beat.holding}
        found, seen = [], set()
        for stage in Stage:
            for entry in self.jobs.running(stage):
                key = (entry.job_id, stage)
                seen.add(key)
                beat = beats.get(entry.worker)
                if beat is None:
                    found.append(entry)
                elif stage_ref(entry.job_id, stage.value) in held or not self._beat_after(beat, entry.started_at):
                    self._unheld_since.pop(key, None)
                elif now - self._unheld_since.setdefault(key, now) >= self.ttl:
                    found.append(entry)
        self._unheld_since = {k: v for k, v in self._unheld_since.items() if k in seen}
        return found

    def _beat_after(self, beat: WorkerBeat, moment: float | None) -> bool:
        return moment is not None and beat.at.timestamp() > moment + self.margin

    def stranded(self, beats: dict[str, WorkerBeat]) -> list[UnackedMessage]:
        """Unacknowledged stage messages that no live worker holds, though every live worker has
        beaten since they were delivered."""
        held = {ref for beat in beats.values() for ref in beat.holding}
        found = []
        for message in self.broker.unacked():
            if message.payload is None or stage_ref(message.payload["job_id"], message.payload["stage"]) in held:
                continue
            if all(self._beat_after(beat, message.delivered_at) for beat in beats.values()):
                found.append(message)
        return found

    def tick(self) -> list[RunningStage]:
        """One pass (when leader): returns the running stages re-enqueued."""
        now = time.monotonic()
        self.jobs.client.set(self.alive_key, self.node, ex=self.ttl)  # for `damagelens reaper-ping`
        if now < self._quiet_until or not self.is_leader():
            return []
        beats = live_workers(self.jobs.client)
        orphans = self.orphans(now, beats)
        stranded = {stage_ref(m.payload["job_id"], m.payload["stage"]): m for m in self.stranded(beats)}
        reaped = []
        for entry in orphans:
            message = stranded.pop(stage_ref(entry.job_id, entry.stage.value), None)
            if message is None:
                # Send first, then mark: a crash in between only causes a duplicate delivery (a
                # no-op), never a stage marked queued with no task behind it.
                self.broker.enqueue(StageTask.model_validate(entry.task))
            if self.jobs.reap(entry.job_id, entry.stage, entry.worker):
                reaped.append(entry)
                self._unheld_since.pop((entry.job_id, entry.stage), None)
                log.warning(
                    "re-enqueued a stage whose worker is gone",
                    extra={"job_id": entry.job_id, "stage": entry.stage.value, "worker": entry.worker},
                )
            if message is not None:
                # Mark first, then put the message back (a crash in between leaves it stranded for
                # the next pass), so no new delivery can start before the stage is marked.
                self._restore(message)
        for message in stranded.values():
            self._restore(message)
        if now >= self._next_audit:
            self._next_audit = now + self.audit_every
            self.audit(beats)
        return reaped

    def audit(self, beats: dict[str, WorkerBeat]) -> list[tuple[str, Stage]]:
        """Send again the task of a `queued` stage, or of a stage handed over to its retry (`running`
        with no worker), whose message exists nowhere: not waiting in its queue, not taken by any
        worker, not held. kombu's Redis transport pops a message and then records it as
        unacknowledged in a second step; a Redis restart (or a worker killed) between the two loses
        the message. Also covers a gateway killed between storing a job and enqueuing it, and a
        retry that could not be published. A stage must be missing in two audits in a row (a
        message in flight is never missing that long)."""
        present = {ref for beat in beats.values() for ref in beat.holding}
        present |= {stage_ref(m.payload["job_id"], m.payload["stage"]) for m in self.broker.unacked() if m.payload}
        present |= {stage_ref(p["job_id"], p["stage"]) for p in self.broker.waiting()}
        cutoff = utcnow().timestamp() - self.audit_every
        missing: dict[tuple[str, Stage], StageTask] = {}
        for key in self.jobs.client.scan_iter(match=KEY_PREFIX + "*", count=500):
            try:
                record = self.jobs.get(key.removeprefix(KEY_PREFIX))
            except JobNotFound:
                continue
            meta = record.meta
            if record.announce_pending and self.jobs.announce_again(meta.id):
                log.warning("queued the finish announcement that had failed", extra={"job_id": meta.id})
            if record.canceled or meta.created_at.timestamp() > cutoff:
                continue
            for stage, state in record.stages.items():
                waiting = state.status == Status.queued or (state.status == Status.running and state.worker is None)
                if waiting and stage_ref(meta.id, stage.value) not in present:
                    task = StageTask(job_id=meta.id, stage=stage, model=meta.model, input_key=meta.input_key, cam_method=meta.cam_method)
                    missing[(meta.id, stage)] = task
        resent = [key for key in missing if key in self._missing]
        self._missing = set(missing) - set(resent)
        for key in resent:
            self.broker.enqueue(missing[key])
            self.jobs.count_resent()
            log.warning("sent again a queued stage whose message was lost", extra={"job_id": key[0], "stage": key[1].value})
        return resent

    def _restore(self, message: UnackedMessage) -> None:
        self.broker.restore(message.tag)
        self.jobs.count_restored()
        log.warning("restored a message its dead worker had taken", extra={"job_id": message.payload["job_id"], "tag": message.tag})

    def run(self, stop: threading.Event) -> None:
        log.info("reaper started", extra={"node": self.node, "interval": self.interval})
        while not stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001  (Redis or broker away: wait, then trust no stale view)
                log.warning("reaper pass failed", extra={"error": str(exc)})
                # Heartbeats may have expired during the outage; give workers a full TTL to beat again.
                self._quiet_until = time.monotonic() + self.ttl
                self._unheld_since.clear()
            stop.wait(self.interval)
        self.release()
