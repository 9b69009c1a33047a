"""`run_stage` against a real Redis and a local store: state transitions, retries, poison input, skips.

The Celery task object is replaced by a small double exposing only the retry bookkeeping
(`request.retries`, `max_retries`, `retry`) — the framework edge; the real worker processes are
exercised in tests/e2e.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from PIL import Image

from damagelens.jobs import JobMeta
from damagelens.jobs.state import utcnow
from damagelens.schemas import Stage, StageState, StageTask, Status
from damagelens.settings import get_settings
from damagelens.storage import StorageError, job_key
from damagelens_worker import runner
from tests.support import images

pytestmark = pytest.mark.integration


class RetryRequested(Exception):
    pass


class TaskDouble:
    def __init__(self, retries: int = 0, max_retries: int = 3):
        self.request = SimpleNamespace(retries=retries)
        self.max_retries = max_retries
        self.countdowns: list[float] = []

    def retry(self, exc: BaseException, countdown: float) -> RetryRequested:
        self.countdowns.append(countdown)
        return RetryRequested(str(exc))


def _job(job_id: str, data: bytes) -> dict:
    key = job_key(job_id, "input.jpg")
    runner.object_store().put(key, data)
    runner.job_store().create(
        JobMeta(
            id=job_id,
            model="fast",
            tasks=[Stage.classify],
            created_at=utcnow(),
            input_key=key,
            filename="c.jpg",
            content_type="image/jpeg",
            width=1,
            height=1,
        )
    )
    return StageTask(job_id=job_id, stage=Stage.classify, model="fast", input_key=key).model_dump(mode="json")


def _ok(payload: StageTask, image: Image.Image) -> runner.StageOutput:
    return runner.StageOutput(result={"size": list(image.size)}, artifacts={"out.png": (b"png", "image/png")}, speed_ms={"inference": 1.0})


def _stage(job_id: str) -> StageState:
    return runner.job_store().get(job_id).stages[Stage.classify]


def test_success_writes_result_artifacts_and_state(env) -> None:
    payload = _job("ok", images.jpeg_exif_rotated(300, 150))
    assert runner.run_stage(TaskDouble(), payload, _ok) == {"status": "succeeded"}
    record = runner.job_store().get("ok")
    assert record.results[Stage.classify] == {"size": [150, 300]}  # the work function saw the upright image
    assert record.stages[Stage.classify].status == Status.succeeded and record.stages[Stage.classify].attempts == 1
    assert runner.object_store().get("jobs/ok/out.png") == b"png"
    assert runner.run_stage(TaskDouble(), payload, _ok) == {"skipped": "succeeded"}  # duplicate delivery


def test_the_work_function_gets_the_working_size_image_and_its_original_size(env, monkeypatch) -> None:
    from damagelens.imaging import original_size

    monkeypatch.setenv("DAMAGELENS_WORK_MAX_SIDE", "200")
    get_settings.cache_clear()
    payload = _job("big", images.jpeg_exif_rotated(300, 150))

    def sizes(payload: StageTask, image: Image.Image) -> runner.StageOutput:
        return runner.StageOutput(result={"size": list(image.size), "original": list(original_size(image))})

    assert runner.run_stage(TaskDouble(), payload, sizes) == {"status": "succeeded"}
    assert runner.job_store().get("big").results[Stage.classify] == {"size": [75, 150], "original": [150, 300]}


def test_poison_input_fails_with_its_code_and_is_not_retried(env) -> None:
    task = TaskDouble()
    assert runner.run_stage(task, _job("bad", images.truncated_jpeg()), _ok) == {"failed": "invalid_image"}
    assert _stage("bad").status == Status.failed and _stage("bad").error.code == "invalid_image"
    assert task.countdowns == []


def test_a_crashing_model_is_reported_not_silent(env) -> None:
    def boom(payload, image):
        raise RuntimeError("CUDA out of memory")

    assert runner.run_stage(TaskDouble(), _job("crash", images.jpeg()), boom) == {"failed": "internal_error"}
    assert "CUDA out of memory" in _stage("crash").error.message


def test_transient_errors_retry_with_backoff_then_fail(env) -> None:
    def flaky(payload, image):
        raise StorageError("connection reset")

    payload = _job("flaky", images.jpeg())
    task = TaskDouble(retries=1, max_retries=3)
    with pytest.raises(RetryRequested):
        runner.run_stage(task, payload, flaky)
    assert 0 < task.countdowns[0] <= 2.0
    assert _stage("flaky").status == Status.running  # progress never goes backwards
    assert runner.run_stage(TaskDouble(retries=3, max_retries=3), payload, flaky) == {"failed": "storage_unavailable"}
    assert _stage("flaky").error.code == "storage_unavailable"


def test_retries_are_not_mistaken_for_lost_deliveries(env) -> None:
    """Three transient failures then success: every retry delivery counts an attempt, but none was lost."""
    calls = {"n": 0}

    def flaky_then_ok(payload, image):
        calls["n"] += 1
        if calls["n"] <= get_settings().stage_max_attempts:
            raise StorageError("connection reset")
        return _ok(payload, image)

    payload = _job("recovers", images.jpeg())
    for retries in range(get_settings().stage_max_attempts):
        with pytest.raises(RetryRequested):
            runner.run_stage(TaskDouble(retries=retries, max_retries=5), payload, flaky_then_ok)
    last = TaskDouble(retries=get_settings().stage_max_attempts, max_retries=5)
    assert runner.run_stage(last, payload, flaky_then_ok) == {"status": "succeeded"}
    assert _stage("recovers").status == Status.succeeded and _stage("recovers").attempts == 4


def test_redis_down_before_the_stage_starts_is_retried_not_lost(env, monkeypatch) -> None:
    monkeypatch.setenv("DAMAGELENS_REDIS_URL", "redis://127.0.0.1:9/0")
    get_settings.cache_clear()
    runner.job_store.cache_clear()
    payload = StageTask(job_id="x", stage=Stage.classify, model="fast", input_key="jobs/x/input.jpg").model_dump(mode="json")
    with pytest.raises(RetryRequested):
        runner.run_stage(TaskDouble(), payload, _ok)


def test_too_many_deliveries_fail_the_stage(env) -> None:
    payload = _job("loop", images.jpeg())
    runner.job_store().set_stage("loop", Stage.classify, StageState(status=Status.running, attempts=3, started_at=utcnow()))
    assert runner.run_stage(TaskDouble(), payload, _ok) == {"failed": "worker_lost"}
    assert _stage("loop").status == Status.failed


def test_a_restored_message_knows_the_retries_of_another_delivery(env) -> None:
    """Seen in the chaos suite: a delivery dies with its worker; the reaper re-enqueues the stage, and that
    new message retries through a storage outage (each retry a delivery); later the reaper restores the
    dead worker's original message (its own retry count 0). The retries are on the stage, so the
    original message sees one lost delivery, not `attempts` of them, and finishes the stage."""
    limit = get_settings().stage_max_attempts
    payload = _job("restored", images.jpeg())
    runner.job_store().set_stage("restored", Stage.classify, StageState(status=Status.running, attempts=1, started_at=utcnow()))

    def store_down(payload, image):
        raise StorageError("connection refused")

    for retries in range(limit):  # the reaper's new message, retried through the outage
        with pytest.raises(RetryRequested):
            runner.run_stage(TaskDouble(retries=retries, max_retries=limit + 2), payload, store_down)
    assert _stage("restored").attempts == limit + 1 and _stage("restored").retries == limit
    assert runner.run_stage(TaskDouble(retries=0), payload, _ok) == {"status": "succeeded"}  # the restored original
    assert _stage("restored").attempts == limit + 2


def test_retries_do_not_hide_deliveries_that_were_lost(env) -> None:
    """The poison-photo rule still holds with retries recorded: `limit` lost deliveries fail the stage."""
    limit = get_settings().stage_max_attempts
    payload = _job("poison", images.jpeg())
    runner.job_store().set_stage(
        "poison", Stage.classify, StageState(status=Status.running, attempts=limit + 2, retries=2, started_at=utcnow())
    )
    assert runner.run_stage(TaskDouble(retries=1), payload, _ok) == {"failed": "worker_lost"}


def test_canceled_and_expired_jobs_are_skipped(env) -> None:
    payload = _job("cancel", images.jpeg())
    runner.job_store().cancel("cancel")
    assert runner.run_stage(TaskDouble(), payload, _ok) == {"skipped": "canceled"}
    assert not runner.object_store().exists("jobs/cancel/out.png")
    gone = {**payload, "job_id": "gone"}
    assert runner.run_stage(TaskDouble(), gone, _ok) == {"skipped": "job_not_found"}


def test_a_redelivery_finalizes_a_job_whose_last_write_landed_but_whose_finalizing_did_not(env) -> None:
    """The worker's final stage write succeeded, then it died (or Redis timed out) before counting the
    job and queuing its webhook; acks_late redelivers the task, which finds the stage finished."""
    payload = _job("half-done", images.jpeg())
    jobs = runner.job_store()
    started = StageState(status=Status.running, attempts=1, started_at=utcnow(), worker="dead/1")
    jobs.set_stage("half-done", Stage.classify, started)
    done = started.model_copy(update={"status": Status.succeeded, "finished_at": utcnow()})
    jobs._set_stage(  # the stage write alone, as the Lua script ran it before the process died
        keys=[jobs.key("half-done"), jobs.running_key(Stage.classify)],
        args=[
            "stage:classify",
            done.model_dump_json(),
            "result:classify",
            json.dumps({"size": [1, 1]}),
            utcnow().isoformat(),
            jobs.ttl,
            "half-done",
            "",
            "x",
        ],
    )
    before = jobs.stats().jobs_finished[Status.succeeded]
    assert not jobs.client.hexists(jobs.key("half-done"), "finalized")
    assert runner.run_stage(TaskDouble(), payload, _ok) == {"skipped": "succeeded"}
    assert jobs.client.hexists(jobs.key("half-done"), "finalized")
    assert jobs.stats().jobs_finished[Status.succeeded] == before + 1
    runner.run_stage(TaskDouble(), payload, _ok)  # a further redelivery counts nothing more
    assert jobs.stats().jobs_finished[Status.succeeded] == before + 1
