"""Pure aggregation: per-photo jobs → inspection status, progress and the vehicle summary."""

from __future__ import annotations

from datetime import datetime

from damagelens.inspections.store import InspectionMeta, InspectionStore
from damagelens.jobs import JobNotFound, JobStore
from damagelens.jobs.state import webhook_info
from damagelens.schemas import (
    SEVERITY_LABELS,
    TERMINAL,
    ClassifyResult,
    DamageCounts,
    ErrorInfo,
    InspectionLinks,
    InspectionPhotoPublic,
    InspectionPublic,
    JobPublic,
    SeverityFinding,
    Status,
    UncertainPhoto,
    VehicleSummary,
    ViewFinding,
    WebhookAttempt,
)

# How bad a condition is: a crushed panel is structural, a breakage usually a part; normal is none.
CONDITION_SEVERITY: dict[str, int] = {"Normal": 0, "Breakage": 1, "Crushed": 2}


def inspection_links(inspection_id: str) -> InspectionLinks:
    base = f"/v1/inspections/{inspection_id}"
    return InspectionLinks(self=base, events=f"{base}/events", report=f"{base}/report")


def uncertainty_threshold(entry: object | None, default: float) -> float:
    """The model card's `review_threshold` when the registry entry has one, else the setting."""
    value = getattr(entry, "review_threshold", None)
    return float(value) if value is not None else default


def is_uncertain(classification: ClassifyResult, threshold: float) -> bool:
    """Uncertain when the classifier flagged it for review (`review`, where the schema has it) or
    its top probability is below the threshold. The one place that decides it."""
    if getattr(classification, "review", None) is True:
        return True
    return classification.confidence < threshold


def _split(label: str) -> tuple[str, str]:
    view, _, condition = label.partition(" ")
    return view.lower(), condition


def _assessment(summary: VehicleSummary, photos: list[InspectionPhotoPublic]) -> None:
    """Worst photo-level severity (severe > moderate > minor, then the more confident) and the typed
    damage counts summed over the photos the assess stage ran on; both stay null when it ran on none."""
    worst: tuple[tuple[int, float], SeverityFinding] | None = None
    counts = DamageCounts()
    for photo in photos:
        job = photo.job
        result = job.results.assessment if job is not None else None
        if job is None or result is None:
            continue
        summary.photos_assessed += 1
        counts.dent += result.counts.dent
        counts.scratch += result.counts.scratch
        counts.broken += result.counts.broken
        rank = (SEVERITY_LABELS.index(result.severity.label), result.severity.confidence)
        if worst is None or rank > worst[0]:
            finding = SeverityFinding(
                label=result.severity.label,
                confidence=result.severity.confidence,
                photo_index=photo.index,
                job_id=job.id,
                filename=photo.filename,
            )
            worst = (rank, finding)
    if summary.photos_assessed:
        summary.damage_counts = counts
        summary.severity = worst[1] if worst else None


def vehicle_summary(photos: list[InspectionPhotoPublic], threshold: float) -> VehicleSummary:
    summary = VehicleSummary(uncertainty_threshold=threshold)
    worst: dict[str, tuple[tuple[int, float], ViewFinding]] = {}
    _assessment(summary, photos)
    for photo in photos:
        if photo.status == Status.failed:
            summary.photos_failed += 1
        job = photo.job
        if job is None:
            continue
        if job.results.detection is not None:
            summary.damage_regions += job.results.detection.total_detections
        cls = job.results.classification
        if cls is None:
            continue
        view, condition = _split(cls.label)
        finding = ViewFinding(
            label=cls.label, condition=condition, confidence=cls.confidence, photo_index=photo.index, job_id=job.id, filename=photo.filename
        )
        rank = (CONDITION_SEVERITY.get(condition, 0), cls.confidence)
        if view in ("front", "rear") and (view not in worst or rank > worst[view][0]):
            worst[view] = (rank, finding)
        if is_uncertain(cls, threshold):
            summary.uncertain_photos.append(
                UncertainPhoto(
                    photo_index=photo.index,
                    job_id=job.id,
                    filename=photo.filename,
                    label=cls.label,
                    confidence=cls.confidence,
                    threshold=threshold,
                )
            )
    summary.front = worst["front"][1] if "front" in worst else None
    summary.rear = worst["rear"][1] if "rear" in worst else None
    return summary


def aggregate_status(statuses: list[Status], canceled: bool) -> Status:
    """Done when every photo is; succeeded when at least one photo succeeded (the failed ones are
    listed per photo), failed when none did. `canceled` wins for good once the cancel reached a job (a
    photo canceled) or while photos are unfinished: it must not turn `succeeded` after the
    `inspection.canceled` webhook went out. A DELETE that lost the race to the last job finishing
    reached nothing, so that inspection stays as it ended (its `inspection.succeeded` went out)."""
    if not statuses:
        return Status.failed
    if canceled and (Status.canceled in statuses or not all(s in TERMINAL for s in statuses)):
        return Status.canceled
    if all(s in TERMINAL for s in statuses):
        if Status.succeeded in statuses:
            return Status.succeeded
        return Status.canceled if Status.canceled in statuses else Status.failed
    return Status.queued if all(s in (Status.queued, Status.failed) for s in statuses) else Status.running


def inspection_public(
    meta: InspectionMeta, jobs: dict[str, JobPublic], threshold: float, webhook_attempts: list[WebhookAttempt] | None = None
) -> InspectionPublic:
    photos: list[InspectionPhotoPublic] = []
    for photo in meta.photos:
        job = jobs.get(photo.job_id) if photo.job_id else None
        if photo.job_id and job is None:  # the job expired before the inspection: it will never finish
            expired = ErrorInfo(code="job_expired", message="This photo's job expired before it finished; submit the photo again.")
            photos.append(InspectionPhotoPublic(**{**photo.model_dump(), "status": Status.failed, "error": expired}, job=None))
            continue
        status = job.status if job else photo.status
        error = (job.error if job else None) or photo.error
        photos.append(InspectionPhotoPublic(**{**photo.model_dump(), "status": status, "error": error}, job=job))
    statuses = [p.status for p in photos]
    progress = [p.job.progress if p.job else 1.0 for p in photos]
    status = aggregate_status(statuses, meta.canceled)
    updated = [meta.created_at, *(j.updated_at for j in jobs.values())]
    finished: datetime | None = None
    if status in TERMINAL:
        finished = max([j.finished_at for j in jobs.values() if j.finished_at] or [max(updated)])
    return InspectionPublic(
        id=meta.id,
        status=status,
        progress=round(sum(progress) / len(progress), 3) if progress else 1.0,
        reference=meta.reference,
        model=meta.model,
        tasks=meta.tasks,
        created_at=meta.created_at,
        updated_at=max(updated),
        finished_at=finished,
        photos=photos,
        summary=vehicle_summary(photos, threshold),
        links=inspection_links(meta.id),
        webhook=webhook_info(meta.webhook_url, meta.webhook_events, webhook_attempts or []),
    )


def read_public(meta: InspectionMeta, jobs: JobStore, inspections: InspectionStore, entry: object | None, default_threshold: float):
    """The inspection as clients see it, read from Redis (gateway reads and webhook bodies alike)."""
    found: dict[str, JobPublic] = {}
    for job_id in meta.job_ids:
        try:
            found[job_id] = jobs.public(job_id)
        except JobNotFound:
            continue
    attempts = inspections.webhook_attempts(meta.id) if meta.webhook_url else []
    return inspection_public(meta, found, uncertainty_threshold(entry, default_threshold), attempts)
