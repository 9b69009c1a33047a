"""Inspection records in Redis: one JSON document per inspection; the jobs keep their own state."""

from __future__ import annotations

from datetime import datetime

import redis
from pydantic import BaseModel

from damagelens.jobs.store import redis_client
from damagelens.schemas import InspectionPhoto, Stage, WebhookAttempt
from damagelens.settings import Settings

KEY_PREFIX = "damagelens:inspection:"
WEBHOOK_SUFFIX = ":webhook"


class InspectionNotFound(KeyError):
    pass


class InspectionMeta(BaseModel):
    id: str
    reference: str | None
    model: str
    tasks: list[Stage]
    created_at: datetime
    photos: list[InspectionPhoto]
    owner: str | None = None
    canceled: bool = False
    webhook_url: str | None = None
    webhook_events: list[str] = []

    @property
    def job_ids(self) -> list[str]:
        return [p.job_id for p in self.photos if p.job_id]


class InspectionStore:
    def __init__(self, client: redis.Redis, ttl_seconds: int):
        self.client = client
        self.ttl = ttl_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> InspectionStore:
        return cls(redis_client(settings.redis_url), settings.job_ttl_seconds)

    @staticmethod
    def key(inspection_id: str) -> str:
        return KEY_PREFIX + inspection_id

    def create(self, meta: InspectionMeta) -> None:
        self.client.set(self.key(meta.id), meta.model_dump_json(), ex=self.ttl)

    def get(self, inspection_id: str) -> InspectionMeta:
        raw = self.client.get(self.key(inspection_id))
        if raw is None:
            raise InspectionNotFound(inspection_id)
        return InspectionMeta.model_validate_json(raw)

    def mark_canceled(self, inspection_id: str) -> InspectionMeta:
        meta = self.get(inspection_id).model_copy(update={"canceled": True})
        self.client.set(self.key(inspection_id), meta.model_dump_json(), keepttl=True)
        return meta

    def delete(self, inspection_id: str) -> None:
        self.client.delete(self.key(inspection_id), self.key(inspection_id) + WEBHOOK_SUFFIX)

    def record_webhook_attempt(self, inspection_id: str, attempt: WebhookAttempt) -> None:
        key = self.key(inspection_id) + WEBHOOK_SUFFIX
        self.client.hset(key, str(attempt.attempt), attempt.model_dump_json())
        self.client.expire(key, self.ttl)

    def webhook_attempts(self, inspection_id: str) -> list[WebhookAttempt]:
        raw = self.client.hgetall(self.key(inspection_id) + WEBHOOK_SUFFIX)
        return [WebhookAttempt.model_validate_json(v) for v in raw.values()]

    def claim_finish(self, inspection_id: str) -> bool:
        """True once per inspection: the caller announces that it finished."""
        return bool(self.client.set(self.key(inspection_id) + ":finished", "1", nx=True, ex=self.ttl))

    def release_finish(self, inspection_id: str) -> None:
        """Undo `claim_finish` when the announcement could not be queued."""
        self.client.delete(self.key(inspection_id) + ":finished")
