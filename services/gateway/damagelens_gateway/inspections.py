"""Inspections: several photos of one vehicle → one job per photo, read back as one document.

A photo that is not a usable image fails alone (its entry says why, with its index and file
name); everything about the batch itself (count, total size, model) is checked before anything
is stored. A transient failure part-way removes what was already created.
"""

from __future__ import annotations

import logging
import uuid

from damagelens.imaging import ImageError
from damagelens.inspections import InspectionMeta, InspectionNotFound, read_public
from damagelens.inspections.summary import inspection_links
from damagelens.jobs import JobNotFound
from damagelens.jobs.state import utcnow
from damagelens.schemas import TERMINAL, ErrorInfo, InspectionAccepted, InspectionPhoto, InspectionPublic, Stage, Status
from damagelens_gateway.auth import Caller
from damagelens_gateway.deps import Services
from damagelens_gateway.errors import ApiError
from damagelens_gateway.submission import Webhook, submit_job

log = logging.getLogger(__name__)
PHOTO_ERRORS = ("upload_too_large",)  # ApiErrors of submit_job that belong to one photo, not the batch


def check_batch(count: int, total_bytes: int, services: Services) -> None:
    settings = services.settings
    if count == 0:
        raise ApiError(400, "empty_inspection", "Send the photos as repeated multipart form field 'images'.")
    if count > settings.inspection_max_photos:
        raise ApiError(422, "too_many_photos", f"{count} photos sent; an inspection takes at most {settings.inspection_max_photos}.")
    if total_bytes > settings.inspection_max_bytes:
        raise ApiError(
            413,
            "upload_too_large",
            f"The photos add up to {total_bytes:,} bytes; the limit is {settings.inspection_max_bytes:,}.",
        )


def submit_inspection(
    *,
    photos: list[tuple[bytes, str]],
    model: str | None,
    tasks: list[Stage],
    cam_method: str | None,
    reference: str | None,
    caller: Caller,
    services: Services,
    webhook: Webhook | None = None,
) -> InspectionAccepted:
    settings, jobs = services.settings, services.jobs
    check_batch(len(photos), sum(len(data) for data, _ in photos), services)
    entry = services.registry.get(model or settings.default_model, task="classify")
    jobs.ping()
    inspection_id = uuid.uuid4().hex
    job_ids = [uuid.uuid4().hex for _ in photos]
    services.admission.reserve(caller, job_ids, settings.job_ttl_seconds)
    entries: list[InspectionPhoto] = []
    created: list[str] = []
    try:
        for index, ((data, filename), job_id) in enumerate(zip(photos, job_ids, strict=True)):
            name = filename or f"photo-{index + 1}"
            try:
                submit_job(
                    data=data,
                    filename=name,
                    model=entry.name,
                    tasks=tasks,
                    services=services,
                    cam_method=cam_method,
                    owner=caller.owner,
                    inspection_id=inspection_id,
                    job_id=job_id,
                )
            except ImageError as exc:
                entries.append(_rejected(index, name, exc.code, exc.message))
                continue
            except ApiError as exc:
                if exc.code not in PHOTO_ERRORS:
                    raise
                entries.append(_rejected(index, name, exc.code, exc.message))
                continue
            created.append(job_id)
            entries.append(InspectionPhoto(index=index, filename=name, job_id=job_id, status=Status.queued))
        services.admission.release(caller, [j for j in job_ids if j not in created])
        if not created:
            raise ApiError(
                422,
                "no_valid_photos",
                "None of the photos could be used; nothing was stored.",
                photos=[e.model_dump(mode="json") for e in entries],
            )
        meta = InspectionMeta(
            id=inspection_id,
            reference=reference,
            model=entry.name,
            tasks=tasks,
            created_at=utcnow(),
            photos=entries,
            owner=caller.owner,
            webhook_url=webhook.url if webhook else None,
            webhook_events=webhook.events if webhook else [],
        )
        services.inspections.create(meta)
    except BaseException:
        _undo(services, caller, created, job_ids)
        raise
    log.info("inspection submitted", extra={"inspection_id": inspection_id, "jobs": len(created), "rejected": len(photos) - len(created)})
    return InspectionAccepted(
        id=inspection_id, status=Status.queued, reference=reference, jobs=entries, links=inspection_links(inspection_id)
    )


def _rejected(index: int, filename: str, code: str, message: str) -> InspectionPhoto:
    return InspectionPhoto(index=index, filename=filename, job_id=None, status=Status.failed, error=ErrorInfo(code=code, message=message))


def _undo(services: Services, caller: Caller, created: list[str], reserved: list[str]) -> None:
    """Best effort: the workers drop tasks whose job record is gone."""
    for job_id in created:
        try:
            services.jobs.delete(job_id)
            services.store.delete_prefix(f"jobs/{job_id}/")
        except Exception:  # noqa: BLE001  (the original error is re-raised)
            log.warning("cleanup after failed inspection submit did not complete", extra={"job_id": job_id})
    try:
        services.admission.release(caller, reserved)
    except Exception:  # noqa: BLE001
        pass


def load(services: Services, inspection_id: str, caller: Caller) -> InspectionMeta:
    meta = services.inspections.get(inspection_id)
    if not caller.may_see(meta.owner):
        raise InspectionNotFound(inspection_id)
    return meta


def public(services: Services, meta: InspectionMeta) -> InspectionPublic:
    try:
        entry = services.registry.get(meta.model)
    except Exception:  # noqa: BLE001  (a model removed from the registry since: fall back to the setting)
        entry = None
    return read_public(meta, services.jobs, services.inspections, entry, services.settings.review_threshold)


def cancel(services: Services, meta: InspectionMeta) -> InspectionPublic:
    """Cancel every unfinished job; an inspection that has already finished is returned as it is."""
    current = public(services, meta)
    if current.status in TERMINAL:
        return current
    meta = services.inspections.mark_canceled(meta.id)
    for job_id in meta.job_ids:
        try:
            if services.jobs.public(job_id).status not in TERMINAL:
                services.jobs.cancel(job_id)
        except JobNotFound:
            continue
    return public(services, meta)
