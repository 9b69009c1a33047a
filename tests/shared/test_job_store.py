"""Job state in a real Redis: creation, stage updates, TTL, counters."""

from __future__ import annotations

from datetime import timedelta

import pytest

from damagelens.jobs import JobMeta, JobNotFound, JobStore
from damagelens.jobs.state import to_public, utcnow
from damagelens.schemas import Stage, StageState, Status

pytestmark = pytest.mark.integration


def _meta(job_id: str = "j1", stages: list[Stage] | None = None) -> JobMeta:
    return JobMeta(
        id=job_id,
        model="fast",
        tasks=stages or [Stage.classify, Stage.detect],
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
    assert stats.jobs_finished[Status.failed] == 1 and stats.jobs_submitted == 1
    assert stats.stage_latency[Stage.classify].count == 1
    assert stats.stages_finished[Stage.detect][Status.failed] == 1


def test_finished_stages_are_never_overwritten(redis_url: str) -> None:
    """A late redelivery cannot undo a success, and counters count each stage once."""
    store = JobStore.from_url(redis_url, ttl_seconds=120)
    store.create(_meta("j3"))
    done = StageState(status=Status.succeeded, attempts=1, started_at=utcnow(), finished_at=utcnow())
    assert store.set_stage("j3", Stage.classify, done, {"label": "x"})
    assert not store.set_stage("j3", Stage.classify, StageState(status=Status.running, attempts=2, started_at=utcnow()))
    assert not store.set_stage("j3", Stage.classify, done, {"label": "y"})
    record = store.get("j3")
    assert record.stages[Stage.classify].status == Status.succeeded and record.results[Stage.classify] == {"label": "x"}
    assert store.stats().stages_finished[Stage.classify][Status.succeeded] == 1


def test_cancel_wins_over_a_worker_that_starts_later(redis_url: str) -> None:
    store = JobStore.from_url(redis_url, ttl_seconds=120)
    store.create(_meta("j4"))
    store.set_stage("j4", Stage.classify, StageState(status=Status.running, attempts=1, started_at=utcnow()))
    store.cancel("j4")
    assert not store.set_stage("j4", Stage.detect, StageState(status=Status.running, attempts=1, started_at=utcnow()))
    record = store.get("j4")
    assert record.stages[Stage.detect].status == Status.canceled
    assert record.stages[Stage.classify].status == Status.running  # a running stage finishes; its result is kept
    assert to_public(store.get("j4")).status == Status.canceled  # canceled for the client at once
    store.set_stage("j4", Stage.classify, StageState(status=Status.succeeded, attempts=1, started_at=utcnow(), finished_at=utcnow()))
    assert to_public(store.get("j4")).status == Status.canceled
    assert store.stats().jobs_finished[Status.canceled] == 1  # counted once


CLASSIFIED = {"label": "Front Normal", "confidence": 0.9, "probabilities": {"Front Normal": 0.9}, "model": "fast", "model_version": "7"}


def test_a_job_canceled_while_its_only_stage_runs_stays_canceled(redis_url: str) -> None:
    """A client told `canceled` (and its webhook) must not later read `succeeded`; the result is kept."""
    store = JobStore.from_url(redis_url, ttl_seconds=120)
    store.create(_meta("j6", stages=[Stage.classify]))
    store.set_stage("j6", Stage.classify, StageState(status=Status.running, attempts=1, started_at=utcnow()))
    assert to_public(store.cancel("j6")).status == Status.canceled
    done = StageState(status=Status.succeeded, attempts=1, started_at=utcnow(), finished_at=utcnow())
    assert store.set_stage("j6", Stage.classify, done, CLASSIFIED)
    record = store.get("j6")
    assert to_public(record).status == Status.canceled
    assert record.results[Stage.classify] == CLASSIFIED
    stats = store.stats()
    assert stats.jobs_finished[Status.canceled] == 1 and stats.jobs_finished[Status.succeeded] == 0


def test_canceling_a_finished_job_changes_nothing(redis_url: str) -> None:
    """The gateway checks before it cancels, but a job may finish in between: the cancel must not flip it."""
    store = JobStore.from_url(redis_url, ttl_seconds=120)
    store.create(_meta("j7", stages=[Stage.classify]))
    done = StageState(status=Status.succeeded, attempts=1, started_at=utcnow(), finished_at=utcnow())
    store.set_stage("j7", Stage.classify, done, CLASSIFIED)
    assert to_public(store.cancel("j7")).status == Status.succeeded
    assert not store.get("j7").canceled


def test_nothing_is_written_for_an_expired_job(redis_url: str) -> None:
    store = JobStore.from_url(redis_url, ttl_seconds=120)
    assert not store.set_stage("gone", Stage.classify, StageState(status=Status.running))
    assert store.client.exists(store.key("gone")) == 0
    with pytest.raises(JobNotFound):
        store.cancel("gone")


def test_a_stage_that_lost_its_worker_is_reported_failed(redis_url: str) -> None:
    store = JobStore.from_url(redis_url, ttl_seconds=120, stale_after_seconds=60)
    store.create(_meta("j5"))
    long_ago = utcnow() - timedelta(seconds=120)
    store.set_stage("j5", Stage.classify, StageState(status=Status.running, attempts=1, started_at=long_ago))
    store.set_stage("j5", Stage.detect, StageState(status=Status.running, attempts=1, started_at=utcnow()))
    public = store.public("j5")
    assert public.stages[Stage.classify].status == Status.failed
    assert public.stages[Stage.classify].error.code == "stage_lost"
    assert public.stages[Stage.detect].status == Status.running


def test_unknown_job(redis_url: str) -> None:
    with pytest.raises(JobNotFound):
        JobStore.from_url(redis_url, 60).get("missing")


def test_cancel_marks_queued_stages(redis_url: str) -> None:
    store = JobStore.from_url(redis_url, 60)
    store.create(_meta("j2"))
    public = to_public(store.cancel("j2"))
    assert public.status == Status.canceled
    assert all(s.status == Status.canceled for s in public.stages.values())


def test_a_finish_announcement_the_broker_refused_is_kept_for_the_reaper(redis_url: str) -> None:
    """`on_finished` queues webhooks; when the broker refuses, the finished job is marked instead of the
    webhook being lost, and `announce_again` (what the reaper's audit calls) sends it once it can."""
    store = JobStore.from_url(redis_url, ttl_seconds=120)
    announced: list[Status] = []

    def on_finished(record, status: Status) -> None:
        announced.append(status)
        if len(announced) == 1:
            raise ConnectionRefusedError("broker away")

    store.on_finished = on_finished
    store.create(_meta("j8", stages=[Stage.classify]))
    done = StageState(status=Status.succeeded, attempts=1, started_at=utcnow(), finished_at=utcnow())
    assert store.set_stage("j8", Stage.classify, done, CLASSIFIED)  # written, though its announcement failed
    assert store.get("j8").announce_pending
    assert store.stats().jobs_finished[Status.succeeded] == 1
    assert store.announce_again("j8")
    assert announced == [Status.succeeded, Status.succeeded]
    assert not store.get("j8").announce_pending
    assert not store.announce_again("j8") and len(announced) == 2
