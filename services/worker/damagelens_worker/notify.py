"""`damagelens.notify`: deliver one webhook event, retrying with exponential back-off.

Not an analysis stage: its own queue (`notify`) and worker (`damagelens worker --queue notify`),
no models. Every attempt is recorded on the job or inspection; a URL the SSRF guard refuses is
recorded and not retried.
"""

from __future__ import annotations

import logging

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


def retry_delay(number: int, base: float) -> float:
    """Attempt n waits base·2^(n-1): with 30 s and 8 attempts the last goes out about an hour later."""
    return base * 2 ** (number - 1)


@app.task(name=NOTIFY_TASK, bind=True, max_retries=None)
def notify_task(self, payload: dict) -> dict:
    task = NotifyTask.model_validate(payload)
    settings = get_settings()
    token = job_id_var.set(task.id)
    try:
        try:
            loaded = _load(task)
        except (JobNotFound, InspectionNotFound):
            return {"skipped": "expired"}
        url, owner, data = loaded
        secret = signing_secret(owner, job_store(), settings.webhook_secret)
        if not url or not secret:
            return {"skipped": "no webhook"}
        number = self.request.retries + 1
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
        _record(task, result)
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
        raise self.retry(countdown=retry_delay(number, settings.webhook_retry_base_seconds))
    finally:
        job_id_var.reset(token)
