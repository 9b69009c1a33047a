"""API keys in Redis, stored as SHA-256 digests only; each key carries its own rate and queue cap.

The key itself is shown once, at creation. Looking a key up hashes what the client sent and reads
`damagelens:apikey:<digest>`; the id (`key_…`) names a key in listings, logs and job ownership.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime

import redis
from pydantic import BaseModel, Field

from damagelens.jobs.state import utcnow
from damagelens.webhooks.signing import new_secret

KEY_PREFIX = "damagelens:apikey:"
INDEX_KEY = "damagelens:apikeys"  # id -> digest
TOKEN_PREFIX = "dl_"
PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}


class RateLimit(BaseModel):
    requests: int = Field(ge=1)
    per_seconds: int = Field(ge=1)

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*([a-z]+)\s*", text.lower())
        if not match or match.group(2) not in PERIODS or int(match.group(1)) < 1:
            raise ValueError(f"rate {text!r}: expected N/s, N/min or N/h, e.g. 60/min")
        return cls(requests=int(match.group(1)), per_seconds=PERIODS[match.group(2)])

    def __str__(self) -> str:
        unit = {1: "s", 60: "min", 3600: "h"}.get(self.per_seconds, f"{self.per_seconds}s")
        return f"{self.requests}/{unit}"


class ApiKey(BaseModel):
    id: str
    name: str
    rate: RateLimit
    max_queued: int
    created_at: datetime
    revoked: bool = False
    webhook_secret: str | None = Field(None, description="signs this key's webhooks; shown by `keys create`")


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class KeyStore:
    def __init__(self, client: redis.Redis):
        self.client = client

    def create(self, name: str, rate: RateLimit, max_queued: int) -> tuple[ApiKey, str]:
        """A new key and its secret token (returned once, never stored)."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(
            id="key_" + secrets.token_hex(6),
            name=name,
            rate=rate,
            max_queued=max_queued,
            created_at=utcnow(),
            webhook_secret=new_secret(),
        )
        pipe = self.client.pipeline(transaction=True)
        pipe.set(KEY_PREFIX + digest(token), key.model_dump_json())
        pipe.hset(INDEX_KEY, key.id, digest(token))
        pipe.execute()
        return key, token

    def lookup(self, token: str) -> ApiKey | None:
        raw = self.client.get(KEY_PREFIX + digest(token))
        if raw is None:
            return None
        key = ApiKey.model_validate_json(raw)
        return None if key.revoked else key

    def by_id(self, key_id: str) -> ApiKey | None:
        dig = self.client.hget(INDEX_KEY, key_id)
        raw = self.client.get(KEY_PREFIX + dig) if dig else None
        return ApiKey.model_validate_json(raw) if raw else None

    def list(self) -> list[ApiKey]:
        keys = []
        for _id, dig in sorted(self.client.hgetall(INDEX_KEY).items()):
            raw = self.client.get(KEY_PREFIX + dig)
            if raw is not None:
                keys.append(ApiKey.model_validate_json(raw))
        return sorted(keys, key=lambda k: k.created_at)

    def revoke(self, id_or_name: str) -> list[ApiKey]:
        """Revoke by id, or every key of that name; the record stays so listings show it revoked."""
        revoked = []
        for key in self.list():
            if (key.id == id_or_name or key.name == id_or_name) and not key.revoked:
                updated = key.model_copy(update={"revoked": True})
                self.client.set(KEY_PREFIX + self.client.hget(INDEX_KEY, key.id), updated.model_dump_json())
                revoked.append(updated)
        return revoked
