"""When a job (or the last job of an inspection) finishes, queue its webhook: hooked into
`JobStore.on_finished` in the gateway (cancels) and the workers (everything else)."""

from __future__ import annotations

import json
from collections.abc import Callable

from damagelens.apikeys import KeyStore
from damagelens.inspections import InspectionNotFound, InspectionStore
from damagelens.inspections.summary import aggregate_status
from damagelens.jobs import JobNotFound, JobRecord, JobStore
from damagelens.jobs.state import utcnow
from damagelens.schemas import TERMINAL, NotifyTask, Status
from damagelens.webhooks.guard import WebhookRefused, check_url

JOB_EVENTS = ("job.succeeded", "job.failed", "job.canceled")
INSPECTION_EVENTS = ("inspection.succeeded", "inspection.failed", "inspection.canceled")


def parse_events(raw: str | None, allowed: tuple[str, ...]) -> list[str]:
    """Comma-separated event names; the default is every terminal event of that resource."""
    if raw is None or not raw.strip():
        return list(allowed)
    events = [e.strip() for e in raw.split(",") if e.strip()]
    unknown = [e for e in events if e not in allowed]
    if unknown:
        raise ValueError(f"unknown webhook event(s) {', '.join(unknown)}; valid: {', '.join(allowed)}")
    return list(dict.fromkeys(events))


def validate_webhook(url: str, allow_http: bool, secret: str | None) -> None:
    """Refuse at submit what can never be delivered (the address is checked again at every attempt)."""
    check_url(url, allow_http)
    if not secret:
        raise WebhookRefused("webhooks need a signing secret: set DAMAGELENS_WEBHOOK_SECRET or use an API key")


def signing_secret(owner: str | None, jobs: JobStore, default: str | None) -> str | None:
    if owner:
        key = KeyStore(jobs.client).by_id(owner)
        if key is not None and key.webhook_secret:
            return key.webhook_secret
    return default


def body(event: str, data: dict) -> bytes:
    return json.dumps({"type": event, "timestamp": utcnow().isoformat(), "data": data}, separators=(",", ":")).encode()


class FinishNotifier:
    def __init__(self, jobs: JobStore, inspections: InspectionStore, send: Callable[[NotifyTask], None]):
        self.jobs = jobs
        self.inspections = inspections
        self.send = send

    def __call__(self, record: JobRecord, status: Status) -> None:
        """Queue the job's webhook and, when this job was its inspection's last, the inspection's.
        Raises when the broker refuses: the job store marks the job and the reaper calls this again
        (the `webhook-id`s are fixed, so a receiver drops a webhook that went out twice)."""
        meta = record.meta
        event = f"job.{status.value}"
        if meta.webhook_url and event in meta.webhook_events:
            self.send(NotifyTask(kind="job", id=meta.id, event=event, webhook_id=f"msg_job_{meta.id}_{status.value}"))
        if meta.inspection_id:
            self._inspection(meta.inspection_id)

    def _inspection(self, inspection_id: str) -> None:
        try:
            meta = self.inspections.get(inspection_id)
        except InspectionNotFound:
            return
        if not meta.webhook_url:
            return
        statuses = [p.status for p in meta.photos if p.job_id is None]
        for job_id in meta.job_ids:
            try:
                statuses.append(self.jobs.public(job_id).status)
            except JobNotFound:
                statuses.append(Status.failed)
        status = aggregate_status(statuses, meta.canceled)
        event = f"inspection.{status.value}"
        if status in TERMINAL and event in meta.webhook_events and self.inspections.claim_finish(inspection_id):
            try:
                self.send(NotifyTask(kind="inspection", id=inspection_id, event=event, webhook_id=f"msg_inspection_{inspection_id}"))
            except Exception:
                self.inspections.release_finish(inspection_id)  # so the retry of this announcement can claim it again
                raise
