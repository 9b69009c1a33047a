"""Job state in a real Redis: creation, stage updates, TTL, counters."""

from __future__ import annotations

import pytest

from damagelens.jobs import JobMeta, JobNotFound, JobStore
from damagelens.jobs.state import to_public, utcnow
from damagelens.schemas import Stage, StageState, Status

pytestmark = pytest.mark.integration


def _meta(job_id: str = "j1") -> JobMeta:
    return JobMeta(
        id=job_id,
        model="fast",
        tasks=[Stage.classify, Stage.detect],
        created_at=utcnow(),
        input_key=f"jobs/{job_id}/input.jpg",
        filename="car.jpg",
        content_type="image/jpeg",
        width=10,
        height=20,
    )


def test_lifecycle_and_ttl(redis_url: str) -> None:
    store = JobStore.from_url(redis_url, ttl_seconds=120)
    store.create(_meta())
    assert 0 < store.client.ttl(store.key("j1")) <= 120
    public = to_public(store.get("j1"))
    assert public.status == Status.queued and set(public.stages) == {Stage.classify, Stage.detect}
    now = utcnow()
    store.set_stage("j1", Stage.classify, StageState(status=Status.running, attempts=1, started_at=now))
    assert to_public(store.get("j1")).status == Status.running
    result = {"label": "Front Normal", "confidence": 0.9, "probabilities": {"Front Normal": 0.9}, "model": "fast", "model_version": "1"}
    store.set_stage("j1", Stage.classify, StageState(status=Status.succeeded, attempts=1, started_at=now, finished_at=utcnow()), result)
    store.set_stage(
        "j1",
        Stage.detect,
        StageState(
            status=Status.failed, attempts=1, started_at=now, finished_at=utcnow(), error={"code": "internal_error", "message": "boom"}
        ),
    )
    public = to_public(store.get("j1"))
    assert public.status == Status.failed
    assert public.results.classification.label == "Front Normal"
    assert public.error.stage == Stage.detect
    stats = store.stats()
    assert stats["jobs:failed"] == 1 and stats["latency_count:classify"] == 1


def test_unknown_job(redis_url: str) -> None:
    with pytest.raises(JobNotFound):
        JobStore.from_url(redis_url, 60).get("missing")


def test_cancel_marks_queued_stages(redis_url: str) -> None:
    store = JobStore.from_url(redis_url, 60)
    store.create(_meta("j2"))
    public = to_public(store.cancel("j2"))
    assert public.status == Status.canceled
    assert all(s.status == Status.canceled for s in public.stages.values())
