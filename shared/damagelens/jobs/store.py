"""Redis-backed job store shared by gateway (create, read, cancel) and workers (stage updates)."""

from __future__ import annotations

import json

import redis

from damagelens.jobs.state import JobMeta, JobRecord, derive_status, utcnow
from damagelens.schemas import TERMINAL, Stage, StageState, Status

KEY_PREFIX = "damagelens:job:"
STATS_KEY = "damagelens:stats"
LATENCY_BUCKETS_MS: tuple[float, ...] = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)


class JobNotFound(KeyError):
    pass


def redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=15, decode_responses=True)


class JobStore:
    def __init__(self, client: redis.Redis, ttl_seconds: int):
        self.client = client
        self.ttl = ttl_seconds

    @classmethod
    def from_url(cls, url: str, ttl_seconds: int) -> JobStore:
        return cls(redis_client(url), ttl_seconds)

    @staticmethod
    def key(job_id: str) -> str:
        return KEY_PREFIX + job_id

    def ping(self) -> None:
        self.client.ping()

    def create(self, meta: JobMeta) -> None:
        now = utcnow().isoformat()
        fields = {"meta": meta.model_dump_json(), "updated_at": now}
        for stage in meta.tasks:
            fields[f"stage:{stage.value}"] = StageState().model_dump_json()
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.key(meta.id), mapping=fields)
        pipe.expire(self.key(meta.id), self.ttl)
        pipe.hincrby(STATS_KEY, "jobs_submitted", 1)
        pipe.execute()

    def get(self, job_id: str) -> JobRecord:
        raw = self.client.hgetall(self.key(job_id))
        if not raw or "meta" not in raw:
            raise JobNotFound(job_id)
        stages: dict[Stage, StageState] = {}
        results: dict[Stage, dict] = {}
        for field, value in raw.items():
            kind, _, name = field.partition(":")
            if kind == "stage":
                stages[Stage(name)] = StageState.model_validate_json(value)
            elif kind == "result":
                results[Stage(name)] = json.loads(value)
        return JobRecord(
            meta=JobMeta.model_validate_json(raw["meta"]),
            stages=stages,
            results=results,
            canceled=raw.get("canceled") == "1",
            updated_at=raw.get("updated_at") or utcnow().isoformat(),
        )

    def exists(self, job_id: str) -> bool:
        return bool(self.client.exists(self.key(job_id)))

    def set_stage(self, job_id: str, stage: Stage, state: StageState, result: dict | None = None) -> None:
        """Write one stage (and its result) atomically; a redelivered stage simply overwrites."""
        key = self.key(job_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(key, f"stage:{stage.value}", state.model_dump_json())
        if result is not None:
            pipe.hset(key, f"result:{stage.value}", json.dumps(result))
        pipe.hset(key, "updated_at", utcnow().isoformat())
        pipe.expire(key, self.ttl)
        pipe.execute()
        if state.status in TERMINAL:
            self._record_finish(job_id, stage, state)

    def cancel(self, job_id: str) -> JobRecord:
        record = self.get(job_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.key(job_id), mapping={"canceled": "1", "updated_at": utcnow().isoformat()})
        for stage, state in record.stages.items():
            if state.status == Status.queued:
                pipe.hset(
                    self.key(job_id),
                    f"stage:{stage.value}",
                    state.model_copy(update={"status": Status.canceled, "finished_at": utcnow()}).model_dump_json(),
                )
        pipe.execute()
        return self.get(job_id)

    def _record_finish(self, job_id: str, stage: Stage, state: StageState) -> None:
        """Cluster-wide counters the gateway exports as Prometheus metrics (workers have no scrape port)."""
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
        record = self.get(job_id)
        status = derive_status(list(record.stages.values()), record.canceled)
        if status in TERMINAL and self.client.hsetnx(self.key(job_id), "finalized", "1"):
            self.client.hincrby(STATS_KEY, f"jobs:{status.value}", 1)

    def stats(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.client.hgetall(STATS_KEY).items()}
