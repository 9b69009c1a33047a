"""The shared body of every stage task: state transitions, storage I/O, retries and failures.

Tasks stay thin (Celery's guide): they hand a pure `work` function to `run_stage`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import redis
from billiard.exceptions import SoftTimeLimitExceeded
from celery import Task
from kombu.exceptions import OperationalError
from PIL import Image

from damagelens.imaging import ImageError, load_upright_rgb
from damagelens.jobs import JobNotFound, JobStore
from damagelens.jobs.state import utcnow
from damagelens.logs import job_id_var
from damagelens.registry import UnknownModelError
from damagelens.schemas import ErrorInfo, Stage, StageState, StageTask, Status
from damagelens.settings import get_settings
from damagelens.storage import ObjectStore, StorageError, create_store

log = logging.getLogger(__name__)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (StorageError, redis.ConnectionError, redis.TimeoutError, OperationalError)


@dataclass
class StageOutput:
    result: dict
    artifacts: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # name -> (bytes, content type)
    speed_ms: dict[str, float] = field(default_factory=dict)


@lru_cache(maxsize=1)
def job_store() -> JobStore:
    settings = get_settings()
    return JobStore.from_url(settings.redis_url, settings.job_ttl_seconds)


@lru_cache(maxsize=1)
def object_store() -> ObjectStore:
    return create_store(get_settings())


def _fail(payload: StageTask, state: StageState, code: str, message: str) -> None:
    state = state.model_copy(
        update={"status": Status.failed, "finished_at": utcnow(), "error": ErrorInfo(code=code, message=message, stage=payload.stage)}
    )
    job_store().set_stage(payload.job_id, payload.stage, state)
    log.warning("stage failed", extra={"stage": payload.stage.value, "code": code, "error": message})


def run_stage(task: Task, raw_payload: dict, work: Callable[[StageTask, Image.Image], StageOutput]) -> dict:
    payload = StageTask.model_validate(raw_payload)
    token = job_id_var.set(payload.job_id)
    try:
        return _run(task, payload, work)
    finally:
        job_id_var.reset(token)


def _run(task: Task, payload: StageTask, work: Callable[[StageTask, Image.Image], StageOutput]) -> dict:
    jobs = job_store()
    try:
        record = jobs.get(payload.job_id)
    except JobNotFound:
        log.info("job expired or unknown; dropping task", extra={"stage": payload.stage.value})
        return {"skipped": "job_not_found"}
    state = record.stages.get(payload.stage, StageState())
    if record.canceled or state.status == Status.canceled:
        return {"skipped": "canceled"}
    if state.status == Status.succeeded:
        return {"skipped": "already_succeeded"}  # a duplicate delivery after success: nothing to redo
    state = state.model_copy(update={"status": Status.running, "attempts": state.attempts + 1, "started_at": utcnow(), "error": None})
    jobs.set_stage(payload.job_id, payload.stage, state)
    log.info("stage started", extra={"stage": payload.stage.value, "attempt": state.attempts})
    try:
        image = load_upright_rgb(object_store().get(payload.input_key), get_settings().max_pixels)
        output = work(payload, image)
        for name, (data, content_type) in output.artifacts.items():
            object_store().put(f"jobs/{payload.job_id}/{name}", data, content_type)
    except TRANSIENT_ERRORS as exc:
        if task.request.retries >= task.max_retries:
            _fail(payload, state, "transient_error", f"gave up after {task.request.retries} retries: {exc}")
            return {"failed": "transient_error"}
        jobs_state = state.model_copy(update={"status": Status.queued})
        try:
            jobs.set_stage(payload.job_id, payload.stage, jobs_state)
        except TRANSIENT_ERRORS:
            pass
        log.warning("transient error; retrying", extra={"stage": payload.stage.value, "error": str(exc)})
        raise task.retry(exc=exc, countdown=min(60, 2**task.request.retries)) from exc
    except ImageError as exc:
        _fail(payload, state, exc.code, exc.message)
        return {"failed": exc.code}
    except UnknownModelError as exc:
        _fail(payload, state, "unknown_model", str(exc))
        return {"failed": "unknown_model"}
    except SoftTimeLimitExceeded:
        _fail(payload, state, "timeout", f"stage exceeded {get_settings().task_soft_time_limit_seconds}s")
        return {"failed": "timeout"}
    except Exception as exc:
        log.exception("stage crashed", extra={"stage": payload.stage.value})
        _fail(payload, state, "internal_error", f"{type(exc).__name__}: {exc}")
        return {"failed": "internal_error"}
    done = state.model_copy(update={"status": Status.succeeded, "finished_at": utcnow(), "speed_ms": output.speed_ms})
    jobs.set_stage(payload.job_id, payload.stage, done, output.result)
    log.info("stage succeeded", extra={"stage": payload.stage.value, "speed_ms": output.speed_ms})
    return {"status": "succeeded"}


def artifact_url(job_id: str, name: str) -> str:
    return f"/v1/jobs/{job_id}/artifacts/{name}"


TASK_OPTIONS = dict(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=get_settings().task_max_retries)

__all__ = ["TASK_OPTIONS", "Stage", "StageOutput", "artifact_url", "run_stage"]
