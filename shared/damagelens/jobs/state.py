"""Pure job-state logic: how stage states add up to a job status, progress and public view."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel

from damagelens.schemas import (
    TERMINAL,
    AssessResult,
    ClassifyResult,
    DetectResult,
    ErrorInfo,
    ExplainResult,
    InputInfo,
    JobLinks,
    JobPublic,
    JobResults,
    Stage,
    StageState,
    Status,
    WebhookAttempt,
    WebhookInfo,
)

RESULT_TYPES: dict[Stage, type[BaseModel]] = {
    Stage.classify: ClassifyResult,
    Stage.explain: ExplainResult,
    Stage.detect: DetectResult,
    Stage.assess: AssessResult,
}
RESULT_FIELDS: dict[Stage, str] = {
    Stage.classify: "classification",
    Stage.explain: "explanation",
    Stage.detect: "detection",
    Stage.assess: "assessment",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobMeta(BaseModel):
    id: str
    model: str
    tasks: list[Stage]
    created_at: datetime
    input_key: str
    filename: str
    content_type: str
    width: int
    height: int
    owner: str | None = None  # id of the API key that submitted it; None when auth is off
    inspection_id: str | None = None
    webhook_url: str | None = None
    webhook_events: list[str] = []
    cam_method: str | None = None  # so a lost stage task can be sent again as it was


class JobRecord(BaseModel):
    meta: JobMeta
    stages: dict[Stage, StageState]
    results: dict[Stage, dict]
    canceled: bool = False
    updated_at: datetime
    webhook_attempts: list[WebhookAttempt] = []
    announce_pending: bool = False  # finished, but its webhook could not be queued: the reaper's audit tries again


def artifact_url(job_id: str, name: str) -> str:
    return f"/v1/jobs/{job_id}/artifacts/{name}"


def links(job_id: str) -> JobLinks:
    base = f"/v1/jobs/{job_id}"
    return JobLinks(self=base, events=f"{base}/events", input=artifact_url(job_id, "input"))


def derive_status(stages: list[StageState], canceled: bool) -> Status:
    """`canceled` is set only on a job that had not finished, and it wins for good: a stage that was
    running at the cancel still writes its result, but the job never turns `succeeded` or `failed`
    after clients (and webhooks) were told `canceled`."""
    if canceled:
        return Status.canceled
    statuses = [s.status for s in stages]
    if all(s in TERMINAL for s in statuses):
        if Status.failed in statuses:
            return Status.failed
        if Status.canceled in statuses:
            return Status.canceled
        return Status.succeeded
    if all(s == Status.queued for s in statuses):
        return Status.queued
    return Status.running


def progress(stages: list[StageState]) -> float:
    if not stages:
        return 1.0
    score = sum(1.0 if s.status in TERMINAL else 0.5 if s.status == Status.running else 0.0 for s in stages)
    return round(score / len(stages), 3)


def mark_lost(state: StageState, stale_after_seconds: float | None, now: datetime) -> StageState:
    """A stage still `running` long after any worker could hold it (hard limit + redelivery delay)
    lost its worker for good (e.g. a hard time-limit kill, which Celery acks): say so, never hang."""
    if stale_after_seconds is None or state.status != Status.running or state.started_at is None:
        return state
    if (now - state.started_at).total_seconds() <= stale_after_seconds:
        return state
    message = f"no worker finished this stage within {stale_after_seconds:g}s (worker lost or hard time limit)"
    return state.model_copy(update={"status": Status.failed, "error": ErrorInfo(code="stage_lost", message=message)})


def to_public(record: JobRecord, stale_after_seconds: float | None = None) -> JobPublic:
    meta = record.meta
    now = utcnow()
    ordered = {stage: mark_lost(record.stages[stage], stale_after_seconds, now) for stage in meta.tasks if stage in record.stages}
    status = derive_status(list(ordered.values()), record.canceled)
    finished = [s.finished_at for s in ordered.values() if s.finished_at]
    error: ErrorInfo | None = None
    for stage, state in ordered.items():
        if state.status == Status.failed and state.error is not None:
            error = state.error.model_copy(update={"stage": stage})
            break
    results = JobResults(**{RESULT_FIELDS[stage]: RESULT_TYPES[stage].model_validate(raw) for stage, raw in record.results.items()})
    job_links = links(meta.id)
    return JobPublic(
        id=meta.id,
        status=status,
        progress=progress(list(ordered.values())),
        model=meta.model,
        tasks=meta.tasks,
        created_at=meta.created_at,
        updated_at=record.updated_at,
        finished_at=max(finished) if status in TERMINAL and finished else (record.updated_at if status in TERMINAL else None),
        input=InputInfo(
            filename=meta.filename,
            content_type=meta.content_type,
            width=meta.width,
            height=meta.height,
            url=job_links.input,
        ),
        stages=ordered,
        results=results,
        error=error,
        links=job_links,
        webhook=webhook_info(meta.webhook_url, meta.webhook_events, record.webhook_attempts),
    )


def webhook_info(url: str | None, events: list[str], attempts: list[WebhookAttempt]) -> WebhookInfo | None:
    if url is None:
        return None
    ordered = sorted(attempts, key=lambda a: a.attempt)
    delivered = any(a.status_code is not None and 200 <= a.status_code < 300 for a in ordered)
    return WebhookInfo(url=url, events=events, delivered=delivered, attempts=ordered)
