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
ARTIFACTS: tuple[str, ...] = ("overlay.jpg", "heatmap.png", "detection.jpg")  # besides the input


class Stage(StrEnum):
    classify = "classify"
    explain = "explain"
    detect = "detect"


ALL_STAGES: tuple[Stage, ...] = (Stage.classify, Stage.explain, Stage.detect)


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
    review: bool = Field(False, description="confidence below the model's review threshold: a person should check this photo")


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
    task: Literal["classify", "detect"]
    architecture: str
    version: str
    trained: bool
    metrics: dict[str, float]
    input_size: int
    labels: list[str]
    description: str
    temperature: float = Field(1.0, description="softmax temperature applied to the logits (fit on out-of-fold predictions)")
    review_threshold: float | None = Field(None, description="calibrated confidence below which a result is flagged for review")


class Limits(BaseModel):
    max_upload_bytes: int
    max_pixels: int
    accepted_types: list[str]


class ModelsResponse(BaseModel):
    default: str
    limits: Limits
    models: list[ModelPublic]
