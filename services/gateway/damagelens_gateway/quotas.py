"""Admission control for submits: per-key token bucket, per-key cap on unfinished jobs, and global
back-pressure on stage queue depth. All counters live in Redis and change only inside Lua scripts,
so several gateways share them correctly."""

from __future__ import annotations

import math
import time

from damagelens.jobs import JobNotFound, JobStore
from damagelens.schemas import TERMINAL, Stage
from damagelens.tasks import QUEUES
from damagelens_gateway.auth import Caller
from damagelens_gateway.dispatch import Dispatcher
from damagelens_gateway.errors import ApiError

BUCKET_PREFIX = "damagelens:ratelimit:"
ACTIVE_PREFIX = "damagelens:active:"
BACKPRESSURE_RETRY_SECONDS = 10
ORPHAN_RESERVATION_SECONDS = 120

# KEYS[1] bucket hash; ARGV: capacity, refill per second. Time comes from Redis so gateways agree.
_TAKE_TOKEN = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 60)
return {allowed, tostring(wait)}
"""

# KEYS[1] sorted set of the key's unfinished job ids (score: reservation time); ARGV[1] cap,
# ARGV[2] ttl, ARGV[3..] new job ids.
_RESERVE = """
local cap = tonumber(ARGV[1])
local n = #ARGV - 2
if redis.call('ZCARD', KEYS[1]) + n > cap then return 0 end
local now = tonumber(redis.call('TIME')[1])
for i = 3, #ARGV do redis.call('ZADD', KEYS[1], now, ARGV[i]) end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""


class Admission:
    def __init__(self, jobs: JobStore, dispatcher: Dispatcher, max_queue_depth: int):
        self.jobs = jobs
        self.dispatcher = dispatcher
        self.max_queue_depth = max_queue_depth
        self._take = jobs.client.register_script(_TAKE_TOKEN)
        self._reserve = jobs.client.register_script(_RESERVE)

    def check_queues(self, stages: list[Stage]) -> None:
        self.jobs.ping()  # Redis down is a 503 that says so, before the broker is asked anything
        depths = self.dispatcher.queue_lengths()
        full = [s.value for s in stages if depths.get(QUEUES[s], 0) > self.max_queue_depth]
        if full:
            raise ApiError(
                503,
                "queue_full",
                f"The {', '.join(full)} queue holds more than {self.max_queue_depth} tasks; nothing was queued. Retry later.",
                {"Retry-After": str(BACKPRESSURE_RETRY_SECONDS)},
            )

    def take_token(self, caller: Caller) -> None:
        if caller.key is None:
            return
        rate = caller.key.rate
        allowed, wait = self._take(keys=[BUCKET_PREFIX + caller.key.id], args=[rate.requests, rate.requests / rate.per_seconds])
        if int(allowed) != 1:
            retry = max(1, math.ceil(float(wait)))
            raise ApiError(
                429, "rate_limited", f"Rate limit of {rate} for this key reached; retry in {retry}s.", {"Retry-After": str(retry)}
            )

    def reserve(self, caller: Caller, job_ids: list[str], ttl_seconds: int) -> None:
        """Count new jobs against the key's cap on unfinished jobs (finished ones are pruned first)."""
        if caller.key is None or not job_ids:
            return
        key = ACTIVE_PREFIX + caller.key.id
        self._prune(key)
        if self._reserve(keys=[key], args=[caller.key.max_queued, ttl_seconds, *job_ids]) != 1:
            raise ApiError(
                429,
                "too_many_queued",
                f"This key already has up to {caller.key.max_queued} unfinished jobs; wait for some to finish.",
                {"Retry-After": "5"},
            )

    def release(self, caller: Caller, job_ids: list[str]) -> None:
        if caller.key is not None and job_ids:
            self.jobs.client.zrem(ACTIVE_PREFIX + caller.key.id, *job_ids)

    def _prune(self, key: str) -> None:
        """Drop finished jobs, and reservations whose job never appeared (a submit that died)."""
        done = []
        now = time.time()
        for job_id, reserved_at in self.jobs.client.zrange(key, 0, -1, withscores=True):
            try:
                if self.jobs.public(job_id).status in TERMINAL:
                    done.append(job_id)
            except JobNotFound:
                if now - reserved_at > ORPHAN_RESERVATION_SECONDS:
                    done.append(job_id)
        if done:
            self.jobs.client.zrem(key, *done)
