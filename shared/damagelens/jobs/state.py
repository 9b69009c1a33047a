"""Pure job-state logic: how stage states add up to a job status, progress and public view."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel

from damagelens.schemas import (
    TERMINAL,
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
)

RESULT_TYPES: dict[Stage, type[BaseModel]] = {
    Stage.classify: ClassifyResult,
    Stage.explain: ExplainResult,
    Stage.detect: DetectResult,
}
RESULT_FIELDS: dict[Stage, str] = {Stage.classify: "classification", Stage.explain: "explanation", Stage.detect: "detection"}


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


class JobRecord(BaseModel):
    meta: JobMeta
    stages: dict[Stage, StageState]
    results: dict[Stage, dict]
    canceled: bool = False
    updated_at: datetime


def links(job_id: str) -> JobLinks:
    base = f"/v1/jobs/{job_id}"
    return JobLinks(self=base, events=f"{base}/events", input=f"{base}/artifacts/input")


def derive_status(stages: list[StageState], canceled: bool) -> Status:
    statuses = [s.status for s in stages]
    if all(s in TERMINAL for s in statuses):
        if Status.failed in statuses:
            return Status.failed
        if Status.canceled in statuses:
            return Status.canceled
        return Status.succeeded
    if canceled:
        return Status.canceled
    if all(s == Status.queued for s in statuses):
        return Status.queued
    return Status.running


def progress(stages: list[StageState]) -> float:
    if not stages:
        return 1.0
    score = sum(1.0 if s.status in TERMINAL else 0.5 if s.status == Status.running else 0.0 for s in stages)
    return round(score / len(stages), 3)


def to_public(record: JobRecord) -> JobPublic:
    meta = record.meta
    ordered = {stage: record.stages[stage] for stage in meta.tasks if stage in record.stages}
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
    )
