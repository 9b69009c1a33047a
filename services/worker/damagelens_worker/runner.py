"""The shared body of every stage task: state transitions, storage I/O, retries and failures.

Tasks stay thin (Celery's guide): they hand a pure `work` function to `run_stage`. Every Redis
and storage call sits inside the retry path, because with `acks_late` a task that raises is
acked and would otherwise be lost with its stage stuck in `running`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

import redis
from billiard.exceptions import SoftTimeLimitExceeded
from celery import Task
from kombu.exceptions import OperationalError
from PIL import Image
from pydantic import ValidationError

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
        gave_up = _transient(payload, exc, task.request.retries, task.max_retries)
        if gave_up is not None:
            return gave_up
        raise task.retry(exc=exc, countdown=backoff_seconds(task.request.retries)) from exc
    finally:
        job_id_var.reset(token)


def _transient(payload: StageTask, exc: BaseException, retries: int, max_retries: int | None) -> dict | None:
    """After a transient error: the failure once retries are used up, else None after handing the stage over to its retry."""
    kind = "storage" if isinstance(exc, StorageError) else "redis"
    if max_retries is not None and retries >= max_retries:
        code = "storage_unavailable" if kind == "storage" else "transient_error"
        return _fail_quietly(payload, code, f"gave up after {retries} retries: {exc}")
    log.warning("transient error; retrying", extra={"stage": payload.stage.value, "error": str(exc)})
    _hand_over_to_retry(payload, kind)
    return None


def _run(payload: StageTask, work: Callable[[StageTask, Image.Image], StageOutput], retries: int = 0) -> dict:
    began = _begin(payload, retries)
    if isinstance(began, dict):
        return began
    state = began
    try:
        output = work(payload, _load_image(payload))
        _store_artifacts(payload, output)
    except TRANSIENT_ERRORS:
        raise
    except Exception as exc:  # noqa: BLE001  (SoftTimeLimitExceeded included)
        return _stage_error(payload, state, exc)
    return _succeed(payload, state, output)


def _begin(payload: StageTask, retries: int) -> StageState | dict:
    """Mark the stage running for this delivery; a dict instead when it must not run (skipped or failed)."""
    jobs, settings = job_store(), get_settings()
    try:
        record = jobs.get(payload.job_id)
    except JobNotFound:
        log.info("job expired or unknown; dropping task", extra={"stage": payload.stage.value})
        return {"skipped": "job_not_found"}
    state = record.stages.get(payload.stage, StageState())
    if record.canceled or state.status in (Status.canceled, Status.succeeded, Status.failed):
        with suppress(JobNotFound):  # expired meanwhile: nothing left to finalize
            jobs.finalize_if_done(payload.job_id)  # a no-op unless the delivery that finished it died before finalizing
        return {"skipped": state.status.value if not record.canceled else "canceled"}
    if _lost_deliveries(state, retries) >= settings.stage_max_attempts:
        return _fail(payload, state, "worker_lost", f"the stage was delivered {state.attempts} times and never finished")
    state = state.model_copy(
        update={"status": Status.running, "attempts": state.attempts + 1, "started_at": utcnow(), "error": None, "worker": worker_id()}
    )
    if not jobs.set_stage(payload.job_id, payload.stage, state, task=payload.model_dump(mode="json")):
        return {"skipped": "finished_elsewhere"}  # canceled (or expired) between the read and this write
    log.info("stage started", extra={"stage": payload.stage.value, "attempt": state.attempts})
    return state


def _lost_deliveries(state: StageState, retries: int) -> int:
    """Deliveries whose worker died (OOM, segfault, SIGKILL) before finishing: every delivery counts an
    attempt, and those that ended in one of our own retries are not lost. The stage records its retries
    (so a redelivered older message, e.g. one the reaper restored, still knows them); this message's own
    retry count covers a retry whose hand-over could not be recorded because Redis was down."""
    return state.attempts - max(retries, state.retries)


def _load_image(payload: StageTask) -> Image.Image:
    settings = get_settings()
    return load_upright_rgb(object_store().get(payload.input_key), settings.max_pixels, max_side=settings.work_max_side)


def _store_artifacts(payload: StageTask, output: StageOutput) -> None:
    for name, (data, content_type) in output.artifacts.items():
        object_store().put(job_key(payload.job_id, name), data, content_type)


def _stage_error(payload: StageTask, state: StageState, exc: Exception) -> dict:
    """A non-transient error of the stage's own work: the stage fails with the error's code."""
    if isinstance(exc, ImageError):
        return _fail(payload, state, exc.code, exc.message)
    if isinstance(exc, UnknownModelError):
        return _fail(payload, state, "unknown_model", str(exc))
    if isinstance(exc, SoftTimeLimitExceeded):
        return _fail(payload, state, "timeout", f"stage exceeded {get_settings().task_soft_time_limit_seconds}s")
    log.error("stage crashed", extra={"stage": payload.stage.value}, exc_info=exc)
    return _fail(payload, state, "internal_error", f"{type(exc).__name__}: {exc}")


def _succeed(payload: StageTask, state: StageState, output: StageOutput, batch_size: int | None = None) -> dict:
    update = {"status": Status.succeeded, "finished_at": utcnow(), "speed_ms": output.speed_ms, "batch_size": batch_size}
    done = state.model_copy(update=update)
    job_store().set_stage(payload.job_id, payload.stage, done, output.result)
    log.info("stage succeeded", extra={"stage": payload.stage.value, "speed_ms": output.speed_ms})
    return {"status": "succeeded"}


def _hand_over_to_retry(payload: StageTask, kind: str) -> None:
    """Best effort: count the retry and drop this worker's hold on the stage (it stays `running`, with
    no worker), so the reaper leaves the retry alone while its message exists (in a queue or in another
    worker's memory) and its audit sends the stage again if the retry could not be published at all.
    If Redis is the thing that is down, nothing is written and the reaper re-enqueues the stage should
    the retry be lost."""
    try:
        jobs = job_store()
        jobs.count_retry(kind)
        state = jobs.get(payload.job_id).stages.get(payload.stage)
        if state is not None and state.status == Status.running:
            jobs.set_stage(payload.job_id, payload.stage, state.model_copy(update={"worker": None, "retries": state.retries + 1}))
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


# ---- micro-batching (DAMAGELENS_BATCH_SIZE > 1): several deliveries of one stage, one forward pass ----

BatchWork = Callable[[list[tuple[StageTask, Image.Image]]], list[StageOutput | Exception]]
"""Batched work: one output (or the error of that one item) per (payload, image), in order."""


class BatchTask(Protocol):
    """What `run_stage_batch` needs of its Celery task (`batching.StageBatches`)."""

    max_retries: int | None

    def retry_request(self, request: Any, payload: StageTask, countdown: float) -> None: ...


@dataclass
class _Item:
    request: Any  # celery_batches.SimpleRequest: args, request_dict (its retries), id
    payload: StageTask
    retries: int
    state: StageState | None = None
    image: Image.Image | None = None
    outcome: dict | None = None  # set once the item is done (succeeded, failed, skipped or handed to a retry)
    lost_before: bool = False  # an earlier delivery of it died with its worker: run alone, after the batch


def run_stage_batch(
    task: BatchTask, requests: list[Any], work_batch: BatchWork, work: Callable[[StageTask, Image.Image], StageOutput]
) -> list[dict]:
    """`run_stage` for a batch: the same state transitions, failures and retry accounting per item,
    with the model run once over every item that got as far as a decoded image.

    A photo that fails to load fails only its own stage before the forward pass. A transient error
    retries only the items it hit. Items whose earlier delivery died with its worker (a photo that
    may crash the process) run one at a time after the others are stored, so they cannot take the
    rest of the batch down with them again. Returns one outcome per request, in order.
    """
    items: list[_Item] = []
    outcomes: list[dict] = []
    for request in requests:
        try:
            payload = StageTask.model_validate((request.args or [None])[0])
        except ValidationError as exc:
            log.error("batched task with an invalid payload; dropped", extra={"error": str(exc)})
            outcomes.append({"failed": "invalid_payload"})
            continue
        item = _Item(request, payload, int((request.request_dict or {}).get("retries") or 0))
        items.append(item)
        outcomes.append(item)  # type: ignore[arg-type]  (replaced by its outcome below)
    for item in items:
        _guarded(task, item, lambda item=item: _prepare(item))
    ready = [i for i in items if i.outcome is None and not i.lost_before]
    if ready:
        _forward(task, ready, work_batch, work)
    for item in (i for i in items if i.outcome is None):  # the suspects, one by one
        _forward(task, [item], work_batch, work)
    return [o.outcome if isinstance(o, _Item) else o for o in outcomes]  # type: ignore[misc]


def _prepare(item: _Item) -> None:
    began = _begin(item.payload, item.retries)
    if isinstance(began, dict):
        item.outcome = began
        return
    item.state = began
    item.lost_before = _lost_deliveries(began, item.retries) > 1  # `began` counts this delivery too
    item.image = _load_image(item.payload)


def _forward(task: BatchTask, items: list[_Item], work_batch: BatchWork, work: Callable[[StageTask, Image.Image], StageOutput]) -> None:
    """One batched model call over `items`; should the batch itself raise, each item runs alone, so a
    bad input fails only its own stage."""
    token = job_id_var.set(items[0].payload.job_id if len(items) == 1 else None)
    try:
        outputs: list[StageOutput | Exception] = work_batch([(i.payload, i.image) for i in items])  # type: ignore[misc]
        if len(outputs) != len(items):
            raise RuntimeError(f"batched work returned {len(outputs)} outputs for {len(items)} inputs")
    except SoftTimeLimitExceeded as exc:
        outputs = [exc] * len(items)
    except Exception as exc:  # noqa: BLE001
        log.warning("batched forward pass failed; running its items one by one", extra={"size": len(items), "error": str(exc)})
        outputs = []
        for item in items:
            try:
                outputs.append(work(item.payload, item.image))  # type: ignore[arg-type]
            except Exception as item_exc:  # noqa: BLE001
                outputs.append(item_exc)
    finally:
        job_id_var.reset(token)
    for item, output in zip(items, outputs, strict=True):
        _guarded(task, item, lambda item=item, output=output: _complete(item, output, len(items)))


def _complete(item: _Item, output: StageOutput | Exception, size: int) -> None:
    if isinstance(output, Exception):
        raise output
    _store_artifacts(item.payload, output)
    item.outcome = _succeed(item.payload, item.state, output, batch_size=size)  # type: ignore[arg-type]


def _guarded(task: BatchTask, item: _Item, step: Callable[[], None]) -> None:
    """Run one item's step with `run_stage`'s error handling: transient errors retry that item only
    (re-published with retries + 1, as `Task.retry` does), others fail its stage with their code."""
    token = job_id_var.set(item.payload.job_id)
    try:
        step()
    except TRANSIENT_ERRORS as exc:
        gave_up = _transient(item.payload, exc, item.retries, task.max_retries)
        if gave_up is not None:
            item.outcome = gave_up
            return
        try:
            task.retry_request(item.request, item.payload, backoff_seconds(item.retries))
            item.outcome = {"retry": item.retries + 1}
        except Exception as publish_exc:  # noqa: BLE001  (broker away too: the reaper's audit sends the stage again)
            log.error("could not publish the retry", extra={"stage": item.payload.stage.value, "error": str(publish_exc)})
            item.outcome = {"retry_lost": str(publish_exc)}
    except Exception as exc:  # noqa: BLE001
        if item.state is None:  # failed before the stage was marked running (as a plain task's failure signal would)
            item.outcome = _fail_quietly(item.payload, "internal_error", f"{type(exc).__name__}: {exc}")
        else:
            item.outcome = _stage_error(item.payload, item.state, exc)
    finally:
        job_id_var.reset(token)
