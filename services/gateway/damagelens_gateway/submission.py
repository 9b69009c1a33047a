"""Submitting a job: validate → store the upload → record the job → enqueue each stage."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from damagelens.imaging import inspect_upload
from damagelens.jobs import JobMeta
from damagelens.jobs.state import utcnow
from damagelens.schemas import ALL_STAGES, CAM_METHODS, DEFAULT_STAGES, Stage, StageTask
from damagelens.settings import Settings
from damagelens.storage import job_key
from damagelens.webhooks.guard import WebhookRefused
from damagelens.webhooks.trigger import parse_events, validate_webhook
from damagelens_gateway.deps import Services
from damagelens_gateway.errors import ApiError

log = logging.getLogger(__name__)


def parse_tasks(raw: str | None) -> list[Stage]:
    if raw is None or not raw.strip():
        return list(DEFAULT_STAGES)
    wanted: list[Stage] = []
    for part in (p.strip().lower() for p in raw.split(",")):
        if not part:
            continue
        try:
            stage = Stage(part)
        except ValueError:
            raise ApiError(422, "unknown_task", f"Unknown task {part!r}; valid tasks: {', '.join(ALL_STAGES)}.") from None
        if stage not in wanted:
            wanted.append(stage)
    return [s for s in ALL_STAGES if s in wanted] or list(DEFAULT_STAGES)


@dataclass(frozen=True)
class Webhook:
    url: str
    events: list[str]


def parse_webhook(
    url: str | None, raw_events: str | None, allowed: tuple[str, ...], caller_secret: str | None, settings: Settings
) -> Webhook | None:
    """Checked at submit (scheme, secret, event names); the address is checked at every attempt."""
    if url is None or not url.strip():
        if raw_events:
            raise ApiError(422, "invalid_request", "webhook_events needs a webhook_url.")
        return None
    try:
        events = parse_events(raw_events, allowed)
        validate_webhook(url.strip(), settings.webhook_allow_http, caller_secret or settings.webhook_secret)
    except WebhookRefused as exc:
        raise ApiError(422, "webhook_refused", str(exc)) from None
    except ValueError as exc:
        raise ApiError(422, "unknown_webhook_event", str(exc)) from None
    return Webhook(url.strip(), events)


def check_cam_method(cam_method: str | None) -> None:
    if cam_method is not None and cam_method not in CAM_METHODS:
        raise ApiError(422, "unknown_cam_method", f"cam_method must be one of {', '.join(CAM_METHODS)}.")


def submit_job(
    *,
    data: bytes,
    filename: str,
    model: str | None,
    tasks: list[Stage],
    services: Services,
    cam_method: str | None = None,
    owner: str | None = None,
    inspection_id: str | None = None,
    job_id: str | None = None,
    webhook: Webhook | None = None,
) -> str:
    settings, registry, store, jobs = services.settings, services.registry, services.store, services.jobs
    if len(data) > settings.max_upload_bytes:
        raise ApiError(413, "upload_too_large", f"The upload is {len(data):,} bytes; the limit is {settings.max_upload_bytes:,}.")
    entry = registry.get(model or settings.default_model, task="classify")
    info = inspect_upload(data, settings.max_pixels)
    jobs.ping()  # fail with 503 before writing anything when Redis is down
    job_id = job_id or uuid.uuid4().hex
    input_key = job_key(job_id, f"input.{info.extension}")
    store.put(input_key, data, info.content_type)
    meta = JobMeta(
        id=job_id,
        model=entry.name,
        tasks=tasks,
        created_at=utcnow(),
        input_key=input_key,
        filename=filename or f"upload.{info.extension}",
        content_type=info.content_type,
        width=info.width,
        height=info.height,
        owner=owner,
        inspection_id=inspection_id,
        webhook_url=webhook.url if webhook else None,
        webhook_events=webhook.events if webhook else [],
        cam_method=cam_method,
    )
    try:
        jobs.create(meta)
        for stage in tasks:
            services.dispatcher.enqueue(StageTask(job_id=job_id, stage=stage, model=entry.name, input_key=input_key, cam_method=cam_method))
    except Exception:
        # Nothing half-done survives: the client sees an error and may resubmit.
        for cleanup in (lambda: jobs.delete(job_id), lambda: store.delete_prefix(f"jobs/{job_id}/")):
            try:
                cleanup()
            except Exception:  # noqa: BLE001  (best effort; the original error is re-raised)
                log.warning("cleanup after failed submit did not complete", extra={"job_id": job_id})
        raise
    log.info("job submitted", extra={"job_id": job_id, "model": entry.name, "tasks": [t.value for t in tasks]})
    return job_id
