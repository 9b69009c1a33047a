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
    retries: int = Field(0, description="deliveries that ended in a transient-error retry (storage or Redis): attempts, not lost ones")
    started_at: datetime | None = None
    finished_at: datetime | None = None
    speed_ms: dict[str, float] = Field(default_factory=dict)
    error: ErrorInfo | None = None
    worker: str | None = Field(None, description="id of the worker process running this stage (the reaper checks its heartbeat)")
    batch_size: int | None = Field(
        None, description="photos that shared this stage's forward pass (micro-batching; `speed_ms` is then the batch's); unset: alone"
    )


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
    severity: SeverityLabel = Field(description="severity of this region (the region severity model on the box's crop)")
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
    model: str = Field(description="`<severity model>+<typed detector>` (the severity model of the photo)")
    model_version: str
    region_model: str | None = Field(
        None, description="severity model of the regions' crops (`damages[].severity`); null on results from before it was separate"
    )
    region_model_version: str | None = None


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


class WebhookAttempt(BaseModel):
    attempt: int
    at: datetime
    status_code: int | None = None
    error: str | None = None
    refused: bool = Field(False, description="the SSRF guard refused the URL; no connection was made and no retry follows")
    duration_ms: float = 0.0


class WebhookInfo(BaseModel):
    url: str
    events: list[str]
    delivered: bool = False
    attempts: list[WebhookAttempt] = Field(default_factory=list)


class NotifyTask(BaseModel):
    """Celery payload of `damagelens.notify`: what finished; the task reads the document itself."""

    kind: Literal["job", "inspection"]
    id: str
    event: str
    webhook_id: str = Field(description="`webhook-id`: the same on every retry, so receivers can de-duplicate")


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
    webhook: WebhookInfo | None = None


class JobAccepted(BaseModel):
    id: str
    status: Status
    links: JobLinks


class InspectionLinks(BaseModel):
    self: str
    events: str
    report: str


class InspectionPhoto(BaseModel):
    """One photo of an inspection: its job, or why it never got one (a bad photo fails only itself)."""

    index: int = Field(description="position of the photo in the request, from 0")
    filename: str
    job_id: str | None
    status: Status
    error: ErrorInfo | None = None


class InspectionAccepted(BaseModel):
    id: str
    status: Status
    reference: str | None
    jobs: list[InspectionPhoto]
    links: InspectionLinks


class ViewFinding(BaseModel):
    """The worst condition seen for one view (front or rear) and the photo that shows it."""

    label: str
    condition: str
    confidence: float
    photo_index: int
    job_id: str
    filename: str


class UncertainPhoto(BaseModel):
    photo_index: int
    job_id: str
    filename: str
    label: str
    confidence: float
    threshold: float


class SeverityFinding(BaseModel):
    """The worst photo-level severity of the inspection (assess stage) and the photo that shows it."""

    label: SeverityLabel
    confidence: float
    photo_index: int
    job_id: str
    filename: str


class VehicleSummary(BaseModel):
    front: ViewFinding | None = None
    rear: ViewFinding | None = None
    damage_regions: int = Field(0, description="detections summed over all photos")
    severity: SeverityFinding | None = Field(None, description="worst photo-level severity; null when no photo was assessed")
    damage_counts: DamageCounts | None = Field(None, description="typed damages summed over assessed photos; null when none was")
    photos_assessed: int = Field(0, description="photos with an assess result")
    uncertain_photos: list[UncertainPhoto] = Field(default_factory=list)
    uncertainty_threshold: float = Field(0.5, description="top probability below which a photo counts as uncertain")
    photos_failed: int = 0


class InspectionPhotoPublic(InspectionPhoto):
    job: JobPublic | None = None


class InspectionPublic(BaseModel):
    id: str
    status: Status
    progress: float
    reference: str | None
    model: str
    tasks: list[Stage]
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    photos: list[InspectionPhotoPublic]
    summary: VehicleSummary
    links: InspectionLinks
    webhook: WebhookInfo | None = None


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
    temperature: float = Field(1.0, description="softmax temperature applied to the logits (fit on out-of-fold predictions)")
    review_threshold: float | None = Field(None, description="calibrated confidence below which a result is flagged for review")
    members: list[str] = Field(default_factory=list, description="an ensemble's member models (their probabilities are averaged)")


class Limits(BaseModel):
    max_upload_bytes: int
    max_pixels: int
    accepted_types: list[str]


class ModelsResponse(BaseModel):
    default: str
    limits: Limits
    models: list[ModelPublic]
