"""Submitting a job: validate → store the upload → record the job → enqueue each stage."""

from __future__ import annotations

import logging
import uuid

from damagelens.imaging import inspect_upload
from damagelens.jobs import JobMeta
from damagelens.jobs.state import utcnow
from damagelens.schemas import ALL_STAGES, Stage, StageTask
from damagelens.storage import job_key
from damagelens_gateway.deps import Services
from damagelens_gateway.errors import ApiError

log = logging.getLogger(__name__)


def parse_tasks(raw: str | None) -> list[Stage]:
    if raw is None or not raw.strip():
        return list(ALL_STAGES)
    wanted: list[Stage] = []
    for part in (p.strip().lower() for p in raw.split(",")):
        if not part:
            continue
        try:
            stage = Stage(part)
        except ValueError:
            raise ApiError(422, "unknown_task", f"Unknown task {part!r}; valid tasks: classify, explain, detect.") from None
        if stage not in wanted:
            wanted.append(stage)
    return [s for s in ALL_STAGES if s in wanted] or list(ALL_STAGES)


def submit_job(
    *,
    data: bytes,
    filename: str,
    model: str | None,
    tasks: list[Stage],
    services: Services,
    cam_method: str | None = None,
) -> str:
    settings, registry, store, jobs = services.settings, services.registry, services.store, services.jobs
    if len(data) > settings.max_upload_bytes:
        raise ApiError(413, "upload_too_large", f"The upload is {len(data):,} bytes; the limit is {settings.max_upload_bytes:,}.")
    entry = registry.get(model or settings.default_model, task="classify")
    info = inspect_upload(data, settings.max_pixels)
    jobs.ping()  # fail with 503 before writing anything when Redis is down
    job_id = uuid.uuid4().hex
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
