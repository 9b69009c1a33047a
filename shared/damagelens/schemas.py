"""Wire schemas shared by gateway, workers and CLI: one definition per boundary."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal, get_args

from pydantic import BaseModel, Field

SEED_LABELS: tuple[str, ...] = (
    "Front Breakage",
    "Front Crushed",
    "Front Normal",
    "Rear Breakage",
    "Rear Crushed",
    "Rear Normal",
)
SEED_FOLDERS: tuple[str, ...] = ("F_Breakage", "F_Crushed", "F_Normal", "R_Breakage", "R_Crushed", "R_Normal")


CamMethod = Literal["gradcam", "hirescam", "gradcam++"]
CAM_METHODS: tuple[str, ...] = get_args(CamMethod)
ARTIFACTS: tuple[str, ...] = ("overlay.jpg", "heatmap.png", "detection.jpg", "assessment.jpg")  # besides the input


class Stage(StrEnum):
    classify = "classify"
    explain = "explain"
    detect = "detect"
    assess = "assess"


ALL_STAGES: tuple[Stage, ...] = (Stage.classify, Stage.explain, Stage.detect, Stage.assess)
DEFAULT_STAGES: tuple[Stage, ...] = ALL_STAGES
"""What a job without `tasks=` runs; `assess` is in it because its benchmark fits the other stages' budget
(docs/models/damage-types.md)."""


class Status(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"


TERMINAL: frozenset[Status] = frozenset({Status.succeeded, Status.failed, Status.canceled})


class ErrorInfo(BaseModel):
    code: str
    message: str
    stage: Stage | None = None


class StageState(BaseModel):
    status: Status = Status.queued
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    speed_ms: dict[str, float] = Field(default_factory=dict)
    error: ErrorInfo | None = None


class ClassifyResult(BaseModel):
    label: str
    confidence: float
    probabilities: dict[str, float]
    model: str
    model_version: str


class ExplainResult(BaseModel):
    method: str
    target_label: str
    overlay_url: str
    heatmap_url: str
    model: str
    model_version: str


class Detection(BaseModel):
    label: str
    confidence: float
    box: list[float] = Field(description="[x1, y1, x2, y2] in pixels of the upright input image")
    box_normalized: list[float] = Field(description="the same box divided by width/height")


class DetectResult(BaseModel):
    detections: list[Detection]
    total_detections: int
    image_width: int
    image_height: int
    image_url: str
    model: str
    model_version: str


DamageType = Literal["dent", "scratch", "broken"]
SeverityLabel = Literal["minor", "moderate", "severe"]
DAMAGE_TYPES: tuple[str, ...] = get_args(DamageType)
SEVERITY_LABELS: tuple[str, ...] = get_args(SeverityLabel)


class SeverityScore(BaseModel):
    label: SeverityLabel
    confidence: float
    probabilities: dict[str, float]


class Damage(BaseModel):
    type: DamageType
    severity: SeverityLabel = Field(description="severity of this region (the severity model on the box's crop)")
    confidence: float = Field(description="detector confidence of the box and its type")
    box: list[float] = Field(description="[x1, y1, x2, y2] in pixels of the upright input image")
    box_normalized: list[float] = Field(description="the same box divided by width/height")


class DamageCounts(BaseModel):
    dent: int = 0
    scratch: int = 0
    broken: int = 0


class AssessResult(BaseModel):
    severity: SeverityScore = Field(description="photo-level severity")
    damages: list[Damage]
    counts: DamageCounts
    image_width: int
    image_height: int
    image_url: str
    model: str = Field(description="`<severity model>+<typed detector>`")
    model_version: str


class InputInfo(BaseModel):
    filename: str
    content_type: str
    width: int
    height: int
    url: str


class JobResults(BaseModel):
    classification: ClassifyResult | None = None
    explanation: ExplainResult | None = None
    detection: DetectResult | None = None
    assessment: AssessResult | None = None


class JobLinks(BaseModel):
    self: str
    events: str
    input: str


class JobPublic(BaseModel):
    id: str
    status: Status
    progress: float
    model: str
    tasks: list[Stage]
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    input: InputInfo
    stages: dict[Stage, StageState]
    results: JobResults
    error: ErrorInfo | None
    links: JobLinks


class JobAccepted(BaseModel):
    id: str
    status: Status
    links: JobLinks


class StageTask(BaseModel):
    """Celery payload: ids and keys only; the worker fetches what it needs (Celery task-design guide)."""

    job_id: str
    stage: Stage
    model: str
    input_key: str
    cam_method: str | None = None


class ErrorBody(BaseModel):
    error: ErrorInfo


class ModelPublic(BaseModel):
    name: str
    aliases: list[str]
    task: Literal["classify", "detect", "severity"]
    architecture: str
    version: str
    trained: bool
    metrics: dict[str, float]
    input_size: int
    labels: list[str]
    description: str


class Limits(BaseModel):
    max_upload_bytes: int
    max_pixels: int
    accepted_types: list[str]


class ModelsResponse(BaseModel):
    default: str
    limits: Limits
    models: list[ModelPublic]
