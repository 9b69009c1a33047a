"""Redis-backed job store shared by gateway (create, read, cancel) and workers (stage updates).

Stage writes and cancellation are Lua scripts so a worker and a cancel can never clobber each
other: a stage that has finished (succeeded, failed, canceled) is never overwritten, and
nothing is written for a job that has expired. The same scripts keep an index of running stages
per queue (what the reaper scans, what the running-stages gauge counts) and publish each change
on one pub/sub channel, so live-update streams wait instead of polling.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import redis
from pydantic import BaseModel, Field

from damagelens.jobs.state import JobMeta, JobRecord, derive_status, to_public, utcnow
from damagelens.schemas import TERMINAL, JobPublic, Stage, StageState, Status, WebhookAttempt
from damagelens.settings import Settings

log = logging.getLogger(__name__)
KEY_PREFIX = "damagelens:job:"
STATS_KEY = "damagelens:stats"
RUNNING_PREFIX = "damagelens:running:"
EVENTS_CHANNEL = "damagelens:job-events"
ANNOUNCE_PENDING = "announce_pending"  # job hash field: finished, webhook not yet queued
LATENCY_BUCKETS_MS: tuple[float, ...] = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)

_SET_STAGE = """
if redis.call('HEXISTS', KEYS[1], 'meta') == 0 then return -1 end
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local status = cjson.decode(current)['status']
  if status == 'succeeded' or status == 'failed' or status == 'canceled' then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], 'updated_at', ARGV[5])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], ARGV[3], ARGV[4]) end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[6]))
if ARGV[8] ~= '' then redis.call('HSET', KEYS[2], ARGV[7], ARGV[8]) else redis.call('HDEL', KEYS[2], ARGV[7]) end
redis.call('PUBLISH', ARGV[9], ARGV[7])
return 1
"""

# A job that has already finished is left as it is (0); otherwise the flag makes it `canceled` for
# good, whatever its running stages write later (their results are still kept).
_CANCEL = """
if redis.call('HEXISTS', KEYS[1], 'meta') == 0 then return -1 end
local stages = {}
local unfinished = false
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(field, 1, 6) == 'stage:' then
    local state = cjson.decode(redis.call('HGET', KEYS[1], field))
    stages[field] = state
    if state['status'] == 'queued' or state['status'] == 'running' then unfinished = true end
  end
end
if not unfinished then return 0 end
redis.call('HSET', KEYS[1], 'canceled', '1', 'updated_at', ARGV[1])
for field, state in pairs(stages) do
  if state['status'] == 'queued' then
    state['status'] = 'canceled'
    state['finished_at'] = ARGV[1]
    redis.call('HSET', KEYS[1], field, cjson.encode(state))
  end
end
redis.call('PUBLISH', ARGV[3], ARGV[2])
return 1
"""

# Put a running stage whose worker is gone back to `queued`, only if it is still held by that worker
# (a new delivery may have started it meanwhile). Its attempt stays counted.
_REAP = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if redis.call('HEXISTS', KEYS[1], 'meta') == 0 or not raw then
  redis.call('HDEL', KEYS[2], ARGV[2])
  return -1
end
local state = cjson.decode(raw)
if state['status'] ~= 'running' or state['worker'] ~= ARGV[3] then
  return 0
end
state['status'] = 'queued'
state['worker'] = cjson.null
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(state), 'updated_at', ARGV[4])
redis.call('HDEL', KEYS[2], ARGV[2])
redis.call('HINCRBY', KEYS[3], ARGV[5], 1)
redis.call('PUBLISH', ARGV[6], ARGV[2])
return 1
"""


class JobNotFound(KeyError):
    pass


class StageLatency(BaseModel):
    sum_seconds: float = 0.0
    count: int = 0
    buckets_ms: dict[float, int] = Field(default_factory=dict, description="cumulative: runs that took ≤ bound")


class ClusterStats(BaseModel):
    """Counters written by every worker; the gateway exports them (workers have no scrape port)."""

    jobs_submitted: int = 0
    jobs_finished: dict[Status, int] = Field(default_factory=dict)
    stages_finished: dict[Stage, dict[Status, int]] = Field(default_factory=dict)
    stage_latency: dict[Stage, StageLatency] = Field(default_factory=dict)
    stages_reaped: dict[Stage, int] = Field(default_factory=dict, description="running stages re-enqueued because their worker died")
    retries: dict[str, int] = Field(default_factory=dict, description="transient-error retries by kind (storage, redis, webhook, …)")
    messages_restored: int = Field(0, description="unacknowledged messages of dead workers put back on their queue by the reaper")
    messages_resent: int = Field(0, description="queued stages whose message was lost, sent again by the reaper's audit")


class RunningStage(BaseModel):
    """An entry of the running-stages index: who holds the stage, and the task to resend if they die."""

    job_id: str
    stage: Stage
    worker: str
    task: dict
    started_at: float | None = None  # unix time, the worker host's clock


def redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=15, decode_responses=True)


class JobStore:
    def __init__(self, client: redis.Redis, ttl_seconds: int, stale_after_seconds: float | None = None):
        self.client = client
        # Called once per job, when it first reaches a terminal status (webhooks hang here).
        self.on_finished: Callable[[JobRecord, Status], None] | None = None
        self.ttl = ttl_seconds
        self.stale_after = stale_after_seconds
        self._set_stage = client.register_script(_SET_STAGE)
        self._cancel = client.register_script(_CANCEL)
        self._reap = client.register_script(_REAP)

    @classmethod
    def from_url(cls, url: str, ttl_seconds: int, stale_after_seconds: float | None = None) -> JobStore:
        return cls(redis_client(url), ttl_seconds, stale_after_seconds)

    @classmethod
    def from_settings(cls, settings: Settings) -> JobStore:
        return cls.from_url(settings.redis_url, settings.job_ttl_seconds, settings.stale_stage_seconds)

    @staticmethod
    def key(job_id: str) -> str:
        return KEY_PREFIX + job_id

    def ping(self) -> None:
        self.client.ping()

    def create(self, meta: JobMeta) -> None:
        fields = {"meta": meta.model_dump_json(), "updated_at": utcnow().isoformat()}
        for stage in meta.tasks:
            fields[f"stage:{stage.value}"] = StageState().model_dump_json()
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.key(meta.id), mapping=fields)
        pipe.expire(self.key(meta.id), self.ttl)
        pipe.hincrby(STATS_KEY, "jobs_submitted", 1)
        pipe.execute()

    def delete(self, job_id: str) -> None:
        self.client.delete(self.key(job_id))

    def get(self, job_id: str) -> JobRecord:
        raw = self.client.hgetall(self.key(job_id))
        if not raw or "meta" not in raw:
            raise JobNotFound(job_id)
        stages: dict[Stage, StageState] = {}
        results: dict[Stage, dict] = {}
        attempts: list[WebhookAttempt] = []
        for field, value in raw.items():
            kind, _, name = field.partition(":")
            if kind == "stage":
                stages[Stage(name)] = StageState.model_validate_json(value)
            elif kind == "result":
                results[Stage(name)] = json.loads(value)
            elif kind == "webhook":
                attempts.append(WebhookAttempt.model_validate_json(value))
        return JobRecord(
            meta=JobMeta.model_validate_json(raw["meta"]),
            stages=stages,
            results=results,
            canceled=raw.get("canceled") == "1",
            updated_at=raw.get("updated_at") or utcnow().isoformat(),
            webhook_attempts=attempts,
            announce_pending=ANNOUNCE_PENDING in raw,
        )

    def record_webhook_attempt(self, job_id: str, attempt: WebhookAttempt) -> None:
        """One field per attempt: a redelivered notify task overwrites its own attempt, nothing else."""
        if self.client.exists(self.key(job_id)):
            self.client.hset(self.key(job_id), f"webhook:{attempt.attempt}", attempt.model_dump_json())

    def public(self, job_id: str) -> JobPublic:
        """What clients see: stages that lost their worker for good are reported failed."""
        return to_public(self.get(job_id), self.stale_after)

    @staticmethod
    def running_key(stage: Stage) -> str:
        return RUNNING_PREFIX + stage.value

    def set_stage(self, job_id: str, stage: Stage, state: StageState, result: dict | None = None, task: dict | None = None) -> bool:
        """Write one stage (and its result) atomically; False when the stage had already finished
        (a cancel or an earlier delivery won) or the job is gone. A `running` state with a worker
        and its `task` payload enters the running-stages index; any other state leaves it."""
        held = ""
        if state.status == Status.running and state.worker and task is not None:
            started = state.started_at.timestamp() if state.started_at else None
            held = json.dumps({"worker": state.worker, "task": task, "started_at": started})
        written = self._set_stage(
            keys=[self.key(job_id), self.running_key(stage)],
            args=[
                f"stage:{stage.value}",
                state.model_dump_json(),
                f"result:{stage.value}",
                json.dumps(result) if result is not None else "",
                utcnow().isoformat(),
                self.ttl,
                job_id,
                held,
                EVENTS_CHANNEL,
            ],
        )
        if written == 1 and state.status in TERMINAL:
            self._record_finish(job_id, stage, state)
        return written == 1

    def cancel(self, job_id: str) -> JobRecord:
        if self._cancel(keys=[self.key(job_id)], args=[utcnow().isoformat(), job_id, EVENTS_CHANNEL]) == -1:
            raise JobNotFound(job_id)
        self.finalize_if_done(job_id)
        return self.get(job_id)

    def running(self, stage: Stage) -> list[RunningStage]:
        """The running-stages index of one queue (a worker id and the task payload per job)."""
        entries = []
        for job_id, raw in self.client.hgetall(self.running_key(stage)).items():
            held = json.loads(raw)
            entries.append(
                RunningStage(job_id=job_id, stage=stage, worker=held["worker"], task=held["task"], started_at=held.get("started_at"))
            )
        return entries

    def running_counts(self) -> dict[Stage, int]:
        pipe = self.client.pipeline(transaction=False)
        for stage in Stage:
            pipe.hlen(self.running_key(stage))
        return dict(zip(Stage, (int(n) for n in pipe.execute()), strict=True))

    def reap(self, job_id: str, stage: Stage, worker: str) -> bool:
        """Put the stage back to `queued` if `worker` still holds it; True when this call did it."""
        done = self._reap(
            keys=[self.key(job_id), self.running_key(stage), STATS_KEY],
            args=[f"stage:{stage.value}", job_id, worker, utcnow().isoformat(), f"reaped:{stage.value}", EVENTS_CHANNEL],
        )
        return done == 1

    def count_resent(self) -> None:
        """Count one queued stage whose lost message the reaper's audit sent again."""
        self.client.hincrby(STATS_KEY, "messages_resent", 1)

    def count_restored(self) -> None:
        """Count one broker message put back by the reaper (its worker died holding it)."""
        self.client.hincrby(STATS_KEY, "messages_restored", 1)

    def count_retry(self, kind: str) -> None:
        """Count one transient-error retry (`storage`, `redis`, `webhook`, …); exported as a Prometheus counter."""
        self.client.hincrby(STATS_KEY, f"retry:{kind}", 1)

    def _record_finish(self, job_id: str, stage: Stage, state: StageState) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.hincrby(STATS_KEY, f"stage:{stage.value}:{state.status.value}", 1)
        if state.started_at and state.finished_at:
            ms = (state.finished_at - state.started_at).total_seconds() * 1000
            pipe.hincrbyfloat(STATS_KEY, f"latency_sum:{stage.value}", ms / 1000)
            pipe.hincrby(STATS_KEY, f"latency_count:{stage.value}", 1)
            for bound in LATENCY_BUCKETS_MS:
                if ms <= bound:
                    pipe.hincrby(STATS_KEY, f"latency_bucket:{stage.value}:{bound:g}", 1)
        pipe.execute()
        self.finalize_if_done(job_id)

    def finalize_if_done(self, job_id: str) -> None:
        """Count each job once, when it first reaches a terminal status, and announce it (webhooks).
        Safe to repeat: a worker whose last write landed but whose finalizing did not (Redis timed out,
        the process was killed) leaves it to the next delivery of that stage, which calls this again."""
        record = self.get(job_id)
        status = derive_status(list(record.stages.values()), record.canceled)
        if status in TERMINAL and self.client.hsetnx(self.key(job_id), "finalized", "1"):
            self.client.hincrby(STATS_KEY, f"jobs:{status.value}", 1)
            self._announce(record, status)

    def announce_again(self, job_id: str) -> bool:
        """Retry the announcement of a finished job whose webhook could not be queued; True once it was."""
        record = self.get(job_id)
        if not record.announce_pending:
            return False
        self.client.hdel(self.key(job_id), ANNOUNCE_PENDING)
        return self._announce(record, derive_status(list(record.stages.values()), record.canceled))

    def _announce(self, record: JobRecord, status: Status) -> bool:
        if self.on_finished is None:
            return True
        try:
            self.on_finished(record, status)
            return True
        except Exception as exc:  # noqa: BLE001  (the broker refused the webhook task: mark it for the reaper)
            log.warning("could not queue the finish announcement; the reaper retries", extra={"job_id": record.meta.id, "error": str(exc)})
            if self.client.exists(self.key(record.meta.id)):
                self.client.hset(self.key(record.meta.id), ANNOUNCE_PENDING, "1")
            return False

    def stats(self) -> ClusterStats:
        raw = {k: float(v) for k, v in self.client.hgetall(STATS_KEY).items()}
        stats = ClusterStats(
            jobs_submitted=int(raw.get("jobs_submitted", 0)),
            jobs_finished={s: int(raw.get(f"jobs:{s.value}", 0)) for s in TERMINAL},
        )
        stats.messages_restored = int(raw.get("messages_restored", 0))
        stats.messages_resent = int(raw.get("messages_resent", 0))
        stats.retries = {k.partition(":")[2]: int(v) for k, v in raw.items() if k.startswith("retry:")}
        for stage in Stage:
            stats.stages_reaped[stage] = int(raw.get(f"reaped:{stage.value}", 0))
            stats.stages_finished[stage] = {s: int(raw.get(f"stage:{stage.value}:{s.value}", 0)) for s in TERMINAL}
            stats.stage_latency[stage] = StageLatency(
                sum_seconds=raw.get(f"latency_sum:{stage.value}", 0.0),
                count=int(raw.get(f"latency_count:{stage.value}", 0)),
                buckets_ms={b: int(raw.get(f"latency_bucket:{stage.value}:{b:g}", 0)) for b in LATENCY_BUCKETS_MS},
            )
        return stats
