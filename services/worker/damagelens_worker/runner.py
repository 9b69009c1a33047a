"""The shared body of every stage task: state transitions, storage I/O, retries and failures.

Tasks stay thin (Celery's guide): they hand a pure `work` function to `run_stage`. Every Redis
and storage call sits inside the retry path, because with `acks_late` a task that raises is
acked and would otherwise be lost with its stage stuck in `running`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import redis
from billiard.exceptions import SoftTimeLimitExceeded
from celery import Task
from kombu.exceptions import OperationalError
from PIL import Image

from damagelens.imaging import ImageError, load_upright_rgb
from damagelens.inspections import InspectionStore
from damagelens.jobs import JobNotFound, JobStore
from damagelens.jobs.state import utcnow
from damagelens.logs import job_id_var
from damagelens.registry import UnknownModelError
from damagelens.schemas import ErrorInfo, NotifyTask, StageState, StageTask, Status
from damagelens.settings import get_settings
from damagelens.storage import ObjectStore, StorageError, create_store, job_key
from damagelens.tasks import NOTIFY_QUEUE, NOTIFY_TASK
from damagelens.webhooks.trigger import FinishNotifier
from damagelens_worker.heartbeat import worker_id

log = logging.getLogger(__name__)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (StorageError, redis.ConnectionError, redis.TimeoutError, OperationalError)


@dataclass
class StageOutput:
    result: dict
    artifacts: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # name -> (bytes, content type)
    speed_ms: dict[str, float] = field(default_factory=dict)


@lru_cache(maxsize=1)
def job_store() -> JobStore:
    store = JobStore.from_settings(get_settings())
    store.on_finished = FinishNotifier(store, inspection_store(), _send_notify)
    return store


@lru_cache(maxsize=1)
def inspection_store() -> InspectionStore:
    return InspectionStore.from_settings(get_settings())


def _send_notify(task: NotifyTask) -> None:
    from damagelens_worker.celery_app import app

    app.send_task(NOTIFY_TASK, args=[task.model_dump(mode="json")], queue=NOTIFY_QUEUE)


@lru_cache(maxsize=1)
def object_store() -> ObjectStore:
    return create_store(get_settings())


def backoff_seconds(retries: int) -> float:
    return min(60.0, 2.0**retries) * random.uniform(0.5, 1.0)


def run_stage(task: Task, raw_payload: dict, work: Callable[[StageTask, Image.Image], StageOutput]) -> dict:
    payload = StageTask.model_validate(raw_payload)
    token = job_id_var.set(payload.job_id)
    try:
        return _run(payload, work, task.request.retries)
    except TRANSIENT_ERRORS as exc:
        kind = "storage" if isinstance(exc, StorageError) else "redis"
        if task.request.retries >= task.max_retries:
            code = "storage_unavailable" if kind == "storage" else "transient_error"
            return _fail_quietly(payload, code, f"gave up after {task.request.retries} retries: {exc}")
        log.warning("transient error; retrying", extra={"stage": payload.stage.value, "error": str(exc)})
        _hand_over_to_retry(payload, kind)
        raise task.retry(exc=exc, countdown=backoff_seconds(task.request.retries)) from exc
    finally:
        job_id_var.reset(token)


def _run(payload: StageTask, work: Callable[[StageTask, Image.Image], StageOutput], retries: int = 0) -> dict:
    jobs, settings = job_store(), get_settings()
    try:
        record = jobs.get(payload.job_id)
    except JobNotFound:
        log.info("job expired or unknown; dropping task", extra={"stage": payload.stage.value})
        return {"skipped": "job_not_found"}
    state = record.stages.get(payload.stage, StageState())
    if record.canceled or state.status in (Status.canceled, Status.succeeded, Status.failed):
        return {"skipped": state.status.value if not record.canceled else "canceled"}
    if state.attempts - retries >= settings.stage_max_attempts:
        # Every delivery counts an attempt; those our own retries explain are not lost ones. The rest
        # are deliveries whose worker died (OOM, segfault, SIGKILL) before finishing.
        return _fail(payload, state, "worker_lost", f"the stage was delivered {state.attempts} times and never finished")
    state = state.model_copy(
        update={"status": Status.running, "attempts": state.attempts + 1, "started_at": utcnow(), "error": None, "worker": worker_id()}
    )
    if not jobs.set_stage(payload.job_id, payload.stage, state, task=payload.model_dump(mode="json")):
        return {"skipped": "finished_elsewhere"}  # canceled (or expired) between the read and this write
    log.info("stage started", extra={"stage": payload.stage.value, "attempt": state.attempts})
    try:
        image = load_upright_rgb(object_store().get(payload.input_key), settings.max_pixels, max_side=settings.work_max_side)
        output = work(payload, image)
        for name, (data, content_type) in output.artifacts.items():
            object_store().put(job_key(payload.job_id, name), data, content_type)
    except TRANSIENT_ERRORS:
        raise
    except ImageError as exc:
        return _fail(payload, state, exc.code, exc.message)
    except UnknownModelError as exc:
        return _fail(payload, state, "unknown_model", str(exc))
    except SoftTimeLimitExceeded:
        return _fail(payload, state, "timeout", f"stage exceeded {settings.task_soft_time_limit_seconds}s")
    except Exception as exc:
        log.exception("stage crashed", extra={"stage": payload.stage.value})
        return _fail(payload, state, "internal_error", f"{type(exc).__name__}: {exc}")
    done = state.model_copy(update={"status": Status.succeeded, "finished_at": utcnow(), "speed_ms": output.speed_ms})
    jobs.set_stage(payload.job_id, payload.stage, done, output.result)
    log.info("stage succeeded", extra={"stage": payload.stage.value, "speed_ms": output.speed_ms})
    return {"status": "succeeded"}


def _hand_over_to_retry(payload: StageTask, kind: str) -> None:
    """Best effort: count the retry and drop this worker's hold on the stage, so the reaper leaves
    the retry (which may wait in a queue or in another worker's memory) alone. If Redis is the
    thing that is down, neither happens and the reaper re-enqueues the stage should the retry be lost."""
    try:
        jobs = job_store()
        jobs.count_retry(kind)
        state = jobs.get(payload.job_id).stages.get(payload.stage)
        if state is not None and state.status == Status.running:
            jobs.set_stage(payload.job_id, payload.stage, state.model_copy(update={"worker": None}))
    except Exception:  # noqa: BLE001
        log.debug("could not hand the stage over to its retry", extra={"stage": payload.stage.value})


def _fail(payload: StageTask, state: StageState, code: str, message: str) -> dict:
    failed = state.model_copy(
        update={"status": Status.failed, "finished_at": utcnow(), "error": ErrorInfo(code=code, message=message, stage=payload.stage)}
    )
    job_store().set_stage(payload.job_id, payload.stage, failed)
    log.warning("stage failed", extra={"stage": payload.stage.value, "code": code, "error": message})
    return {"failed": code}


def _fail_quietly(payload: StageTask, code: str, message: str) -> dict:
    """Last resort after retries: record the failure if Redis answers at all, log it either way."""
    try:
        state = job_store().get(payload.job_id).stages.get(payload.stage, StageState())
        return _fail(payload, state, code, message)
    except Exception:  # noqa: BLE001
        log.error("stage failed and its state could not be written", extra={"stage": payload.stage.value, "error": message})
        return {"failed": code}


TASK_OPTIONS = {"bind": True, "max_retries": get_settings().task_max_retries}
