"""`damagelens.notify`: deliver one webhook event, retrying with exponential back-off.

Not an analysis stage: its own queue (`notify`) and worker (`damagelens worker --queue notify`),
no models. Every attempt is recorded on the job or inspection; a URL the SSRF guard refuses is
recorded and not retried.
"""

from __future__ import annotations

import logging

import redis

from damagelens.inspections import InspectionNotFound, read_public
from damagelens.jobs import JobNotFound
from damagelens.logs import job_id_var
from damagelens.registry import load_registry
from damagelens.schemas import NotifyTask, WebhookAttempt
from damagelens.settings import get_settings
from damagelens.tasks import NOTIFY_TASK
from damagelens.webhooks.delivery import attempt
from damagelens.webhooks.trigger import body, signing_secret
from damagelens_worker.celery_app import app
from damagelens_worker.runner import inspection_store, job_store

log = logging.getLogger(__name__)


def _load(task: NotifyTask) -> tuple[str, str | None, bytes] | None:
    """(url, owner, body) of what finished, or None when it expired meanwhile."""
    jobs, settings = job_store(), get_settings()
    if task.kind == "job":
        record = jobs.get(task.id)
        public = jobs.public(task.id).model_dump(mode="json")
        return record.meta.webhook_url, record.meta.owner, body(task.event, public)
    meta = inspection_store().get(task.id)
    try:
        entry = load_registry(settings.registry_path).get(meta.model)
    except Exception:  # noqa: BLE001
        entry = None
    doc = read_public(meta, jobs, inspection_store(), entry, settings.review_threshold)
    return meta.webhook_url, meta.owner, body(task.event, doc.model_dump(mode="json"))


def _record(task: NotifyTask, result: WebhookAttempt) -> None:
    if task.kind == "job":
        job_store().record_webhook_attempt(task.id, result)
    else:
        inspection_store().record_webhook_attempt(task.id, result)


def retry_delay(number: int, base: float, visibility_timeout: float) -> float:
    """Attempt n waits base·2^(n-1), at most half the broker's visibility timeout: a worker holds a
    retry unacknowledged until its countdown ends, and the Redis transport hands a message held longer
    than that timeout to a second worker, which would POST the same event twice. With 30 s, 8 attempts
    and the default 600 s timeout the last goes out about 23 min after the first."""
    return min(base * 2 ** (number - 1), visibility_timeout / 2)


REDIS_RETRY_SECONDS = 5.0


@app.task(name=NOTIFY_TASK, bind=True, max_retries=None)
def notify_task(self, payload: dict) -> dict:
    task = NotifyTask.model_validate(payload)
    token = job_id_var.set(task.id)
    try:
        return _deliver(self, task, self.request.retries + 1)
    except redis.RedisError as exc:
        # The job store is away: nothing was sent or recorded, so try again shortly rather than drop the
        # event. The delivery counts this as an attempt number, so the attempts stay bounded.
        number = self.request.retries + 1
        if number >= get_settings().webhook_max_attempts:
            log.error("webhook given up: the job store stayed unreachable", extra={"event": task.event, "error": str(exc)})
            return {"delivered": False, "attempts": number}
        log.warning("job store unreachable; webhook retried", extra={"event": task.event, "error": str(exc)})
        raise self.retry(countdown=REDIS_RETRY_SECONDS) from exc
    finally:
        job_id_var.reset(token)


def _deliver(celery_task, task: NotifyTask, number: int) -> dict:
    """One delivery attempt (`number`, from 1); raises Celery's Retry for the next one."""
    settings = get_settings()
    try:
        loaded = _load(task)
    except (JobNotFound, InspectionNotFound):
        return {"skipped": "expired"}
    url, owner, data = loaded
    secret = signing_secret(owner, job_store(), settings.webhook_secret)
    if not url or not secret:
        return {"skipped": "no webhook"}
    result = attempt(
        url=url,
        body=data,
        secret=secret,
        msg_id=task.webhook_id,
        number=number,
        allow_http=settings.webhook_allow_http,
        allowlist=settings.webhook_allowlist,
        timeout=settings.webhook_timeout_seconds,
    )
    try:
        _record(task, result)
    except redis.RedisError as exc:  # sent already: retrying for the record would POST the event again
        log.warning("webhook attempt not recorded: the job store is unreachable", extra={"event": task.event, "error": str(exc)})
    delivered = result.status_code is not None and 200 <= result.status_code < 300
    log.info(
        "webhook attempt",
        extra={"event": task.event, "attempt": number, "status_code": result.status_code, "error": result.error},
    )
    if delivered or result.refused:
        return {"delivered": delivered, "attempts": number}
    if number >= settings.webhook_max_attempts:
        log.warning("webhook given up", extra={"event": task.event, "attempts": number})
        return {"delivered": False, "attempts": number}
    raise celery_task.retry(countdown=retry_delay(number, settings.webhook_retry_base_seconds, settings.visibility_timeout_seconds))
