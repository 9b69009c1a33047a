"""Failures Celery handles outside the task body, recorded on the stage at once.

A hard time-limit kill happens in the main process (the child is gone) and is acked, so without
this the stage would stay `running` until the stale-stage rule reports it minutes later. A
revoked task likewise never reaches `run_stage`.
"""

from __future__ import annotations

import logging

from billiard.exceptions import TimeLimitExceeded
from celery.exceptions import Reject
from celery.signals import task_failure, task_revoked
from pydantic import ValidationError

from damagelens.jobs import JobNotFound
from damagelens.jobs.state import utcnow
from damagelens.schemas import TERMINAL, ErrorInfo, StageState, StageTask, Status
from damagelens_worker.runner import job_store

log = logging.getLogger(__name__)


def record_failure(args: tuple | list | None, code: str, message: str) -> bool:
    """Fail the stage named by a task's payload unless it already finished; True when written."""
    try:
        payload = StageTask.model_validate((args or [None])[0])
    except ValidationError:
        return False  # not one of our stage tasks
    try:
        state = job_store().get(payload.job_id).stages.get(payload.stage, StageState())
        if state.status in TERMINAL:
            return False
        error = ErrorInfo(code=code, message=message, stage=payload.stage)
        failed = state.model_copy(update={"status": Status.failed, "finished_at": utcnow(), "error": error})
        written = job_store().set_stage(payload.job_id, payload.stage, failed)
    except JobNotFound:
        return False
    except Exception as exc:  # noqa: BLE001  (Redis away: the reaper or the stale rule reports it later)
        log.error("could not record a task failure", extra={"job_id": payload.job_id, "code": code, "error": str(exc)})
        return False
    log.warning("stage failed outside its task", extra={"job_id": payload.job_id, "stage": payload.stage.value, "code": code})
    return written


@task_failure.connect
def _on_failure(exception: BaseException | None = None, args=None, **_: object) -> None:
    if isinstance(exception, TimeLimitExceeded):
        record_failure(args, "timeout", f"the stage was killed by the hard time limit ({exception})")
    elif isinstance(exception, Reject):
        return  # a retry that could not be published (broker away): the reaper re-enqueues the stage
    elif exception is not None:
        record_failure(args, "internal_error", f"{type(exception).__name__}: {exception}")


@task_revoked.connect
def _on_revoked(request=None, terminated: bool = False, expired: bool = False, **_: object) -> None:
    reason = "expired" if expired else "terminated" if terminated else "revoked"
    record_failure(getattr(request, "args", None), "revoked", f"the task was {reason}")
