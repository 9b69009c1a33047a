"""Failures Celery handles outside the task body are recorded on the stage at once (real Redis).

Celery sends `task_failure` with `TimeLimitExceeded` from the main process when it kills a child
at the hard limit (celery/worker/request.py `on_timeout`), and `task_revoked` for revoked tasks;
here those signals are sent as Celery sends them, with the task's real payload.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from billiard.exceptions import TimeLimitExceeded
from celery.exceptions import Reject
from celery.signals import task_failure, task_revoked

from damagelens.jobs import JobMeta
from damagelens.jobs.state import utcnow
from damagelens.schemas import Stage, StageState, StageTask, Status
from damagelens.settings import get_settings
from damagelens_worker import failures, runner

pytestmark = pytest.mark.integration


@pytest.fixture
def running_stage(redis_url: str, tmp_path: Path, monkeypatch) -> Iterator[dict]:
    monkeypatch.setenv("DAMAGELENS_REDIS_URL", redis_url)
    monkeypatch.setenv("DAMAGELENS_STORAGE_DIR", str(tmp_path))
    get_settings.cache_clear()
    runner.job_store.cache_clear()
    jobs = runner.job_store()
    meta = JobMeta(
        id="slow",
        model="fast",
        tasks=[Stage.explain],
        created_at=utcnow(),
        input_key="jobs/slow/input.jpg",
        filename="c.jpg",
        content_type="image/jpeg",
        width=1,
        height=1,
    )
    jobs.create(meta)
    payload = StageTask(job_id="slow", stage=Stage.explain, model="fast", input_key=meta.input_key).model_dump(mode="json")
    jobs.set_stage("slow", Stage.explain, StageState(status=Status.running, attempts=1, started_at=utcnow(), worker="w/1"), task=payload)
    yield payload
    runner.job_store.cache_clear()


def _stage():
    return runner.job_store().get("slow").stages[Stage.explain]


def test_a_hard_time_limit_kill_fails_the_stage_at_once(running_stage: dict) -> None:
    task_failure.send(sender=None, task_id="t1", exception=TimeLimitExceeded(360), args=[running_stage], kwargs={})
    state = _stage()
    assert state.status == Status.failed and state.error.code == "timeout"
    assert runner.job_store().running(Stage.explain) == []  # no longer counted as running


def test_a_revoked_task_fails_its_stage(running_stage: dict) -> None:
    request = SimpleNamespace(args=[running_stage])  # the fields of celery's Request the handler reads
    task_revoked.send(sender=None, request=request, terminated=True, signum=15, expired=False)
    assert _stage().error.code == "revoked"


def test_a_retry_that_could_not_be_published_is_left_to_the_reaper(running_stage: dict) -> None:
    task_failure.send(sender=None, task_id="t2", exception=Reject("broker down", requeue=False), args=[running_stage], kwargs={})
    assert _stage().status == Status.running


def test_a_finished_stage_and_foreign_tasks_are_left_alone(running_stage: dict) -> None:
    done = StageState(status=Status.succeeded, attempts=1, started_at=utcnow(), finished_at=utcnow())
    runner.job_store().set_stage("slow", Stage.explain, done, {"x": 1})
    assert not failures.record_failure([running_stage], "timeout", "late")
    assert _stage().status == Status.succeeded
    assert not failures.record_failure([{"url": "https://example.invalid/hook"}], "timeout", "not a stage task")
