"""Micro-batching of a stage queue (`DAMAGELENS_BATCH_SIZE` > 1) through celery-batches.

With a batch size of 1 a stage registers today's plain task and nothing here runs: the reliability
machinery proven by the chaos suite (acks_late, reject on worker lost, `Task.retry`) stays as is.
With B > 1 the main process buffers up to B deliveries (or what arrived within the wait) and hands
them to a child as one call of `runner.run_stage_batch`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from billiard.einfo import ExceptionInfo
from billiard.exceptions import Terminated, TimeLimitExceeded, WorkerLostError
from celery import Task
from celery.worker.request import Request
from celery_batches import Batches, SimpleRequest
from celery_batches.trace import apply_batches_task
from kombu.utils.uuid import uuid
from PIL import Image

from damagelens.jobs.liveness import stage_ref
from damagelens.schemas import Stage, StageTask
from damagelens.settings import get_settings
from damagelens.tasks import QUEUES, TASK_NAMES
from damagelens_worker.celery_app import app
from damagelens_worker.runner import TASK_OPTIONS, BatchWork, StageOutput, run_stage, run_stage_batch

log = logging.getLogger(__name__)

LIVE: list[StageBatches] = []
"""The batch tasks of this process, for the heartbeat (`heartbeat.holding`)."""


class StageBatches(Batches):
    """celery-batches' `Batches` with the gaps closed that matter for acks_late stage tasks.

    - A child that dies mid-batch: `Batches.flush` passes no `error_callback`, so the batch's
      messages would stay unacked in this process until the broker's visibility timeout (600 s).
      Here they are rejected with requeue, as `task_reject_on_worker_lost` does for a plain task
      (a hard time limit instead fails their stages with `timeout`, as `failures.py` does).
    - The heartbeat: buffered, ETA-pending and in-flight batch requests are not in Celery's
      `worker_state`, so the reaper would think their running stages are held by nobody;
      `held_refs` lists them.
    - Batch size: `Batches` flushes everything ready at once (retries whose ETA passed together
      can exceed B); chunks of at most `flush_every` keep the forward pass at B.
    - Retries: `Task.retry` works on one request's context, which a batch has not; `retry_request`
      re-publishes one request with retries + 1 and a countdown, which is what `retry` does.
    """

    abstract = True
    stage: Stage

    def __init__(self) -> None:
        super().__init__()
        self._in_flight: dict[str, list[Request]] = {}
        self._lock = threading.Lock()
        LIVE.append(self)

    def flush(self, requests) -> None:  # type: ignore[override]
        requests = list(requests)
        for start in range(0, len(requests), self.flush_every):
            self._flush_chunk(requests[start : start + self.flush_every])

    def _flush_chunk(self, requests: list[Request]) -> None:
        key = uuid()
        with self._lock:
            self._in_flight[key] = requests

        def on_return(_: Any) -> None:
            self._release(key)
            for request in requests:
                request.acknowledge()  # acks_late: only once the batch has run (each stage's state is written)

        def on_error(einfo: ExceptionInfo) -> None:
            self._release(key)
            self.on_batch_lost(requests, einfo.exception)

        self._pool.apply_async(
            apply_batches_task,
            (self, ([SimpleRequest.from_request(r) for r in requests],), 0, None),
            callback=on_return,
            error_callback=on_error,
        )

    def on_batch_lost(self, requests: list[Request], exc: BaseException | None) -> None:
        """The child running the batch did not return: requeue (worker lost) or fail (hard time limit)."""
        from damagelens_worker.failures import record_failure

        if isinstance(exc, TimeLimitExceeded):
            for request in requests:
                record_failure(request.args, "timeout", f"the stage was killed by the hard time limit ({exc})")
                request.acknowledge()
            return
        if isinstance(exc, Terminated):  # revoked with terminate=True: not redelivered
            for request in requests:
                record_failure(request.args, "revoked", "the task was terminated")
                request.acknowledge()
            return
        log.warning(
            "batch lost with its child; requeued",
            extra={"stage": self.stage.value, "size": len(requests), "error": repr(exc), "lost": isinstance(exc, WorkerLostError)},
        )
        for request in requests:
            request.reject(requeue=True)

    def _release(self, key: str) -> None:
        with self._lock:
            self._in_flight.pop(key, None)

    def held_refs(self) -> list[str]:
        """`job:stage` of every request this process holds: buffered, waiting for its ETA, or running."""
        held: list[Any] = []
        for queue in (self._buffer, self._pending):
            with queue.mutex:
                held.extend(queue.queue)
        with self._lock:
            for requests in self._in_flight.values():
                held.extend(requests)
        refs = []
        for request in held:
            args = request.args or ()
            payload = args[0] if args and isinstance(args[0], dict) else {}
            if "job_id" in payload and "stage" in payload:
                refs.append(stage_ref(payload["job_id"], payload["stage"]))
        return refs

    def retry_request(self, request: SimpleRequest, payload: StageTask, countdown: float) -> None:
        retries = int((request.request_dict or {}).get("retries") or 0)
        self.app.send_task(
            self.name,
            args=request.args,
            kwargs=request.kwargs,
            countdown=countdown,
            retries=retries + 1,
            task_id=request.id,
            queue=QUEUES[payload.stage],
        )


def stage_task(stage: Stage, work: Callable[[StageTask, Image.Image], StageOutput], work_batch: BatchWork) -> Task:
    """Register the stage's task: today's plain task at batch size 1, a `StageBatches` task above."""
    settings = get_settings()
    size = settings.batch_size_for(stage.value)
    if size <= 1:

        def plain(self, payload: dict) -> dict:
            return run_stage(self, payload, work)

        return app.task(name=TASK_NAMES[stage], **TASK_OPTIONS)(plain)

    def batched(self, requests: list[SimpleRequest]) -> list[dict]:
        return run_stage_batch(self, requests, work_batch, work)

    return app.task(
        name=TASK_NAMES[stage],
        base=StageBatches,
        flush_every=size,
        flush_interval=settings.batch_wait_ms / 1000.0,
        stage=stage,
        **TASK_OPTIONS,
    )(batched)
