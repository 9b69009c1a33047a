"""One settings object for every process; values come only from `DAMAGELENS_*` variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from damagelens.schemas import CamMethod

REPO_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    """Read once per process through `get_settings()`; tests clear the cache to override."""

    model_config = SettingsConfigDict(env_prefix="DAMAGELENS_", env_file=None, extra="ignore")

    # queue and job state
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis for job state (and the broker by default).")
    broker_url: str | None = Field(None, description="Celery broker URL; defaults to `redis_url`.")
    job_ttl_seconds: int = Field(86_400, ge=60, description="How long job state and its stored objects are kept.")
    task_soft_time_limit_seconds: int = Field(300, ge=5, description="Soft per-task limit (raises inside the task).")
    task_time_limit_seconds: int = Field(360, ge=10, description="Hard per-task limit (the child process is killed).")
    visibility_timeout_seconds: int = Field(
        600, ge=60, description="Redis broker redelivery delay for unacked tasks (a lost worker's task); must exceed the hard limit."
    )
    stage_max_attempts: int = Field(
        3, ge=1, description="Deliveries of one stage before it fails (a crash-looping image cannot loop forever)."
    )
    task_max_retries: int = Field(
        6, ge=0, description="Retries for transient storage/broker errors, with exponential backoff (6: 31-63 s of waiting in all)."
    )

    # object storage
    storage_backend: Literal["local", "s3"] = Field("local", description="`local` directory (embedded default) or any S3 endpoint.")
    storage_dir: Path = Field(REPO_ROOT / "var" / "storage", description="Root folder of the local backend.")
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint, e.g. http://minio:9000; empty for AWS.")
    s3_bucket: str = Field("damagelens", description="Bucket for uploads and results; created if absent.")
    s3_region: str = Field("us-east-1", description="S3 region.")
    s3_access_key: str | None = Field(None, description="S3 access key (else the default AWS credential chain).")
    s3_secret_key: str | None = Field(None, description="S3 secret key.")
    s3_public_url: str | None = Field(None, description="If set, artifact requests redirect to presigned URLs on this base.")

    # gateway
    host: str = Field("127.0.0.1", description="Gateway bind address.")
    port: int = Field(8000, description="Gateway port.")
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1, description="Largest accepted upload (413 above).")
    max_pixels: int = Field(40_000_000, ge=1, description="Largest accepted width×height (422 above; decompression bombs).")
    compat_timeout_seconds: float = Field(120.0, gt=0, description="How long the seed-compatible `/predict*` endpoints wait.")
    frontend_dir: Path = Field(REPO_ROOT / "frontend" / "dist", description="Built web UI served at `/` when present.")
    cors_origins: list[str] = Field(default_factory=list, description="Extra origins allowed by CORS (JSON list).")

    # models
    default_model: str = Field(
        "fast",
        description="Classifier used when a request names none "
        "(`fast`: about half the time of `accurate`, 1.5 points below it on grouped CV: docs/models).",
    )
    detector_model: str = Field("detector", description="Registry name of the detector.")
    registry_path: Path = Field(REPO_ROOT / "shared" / "damagelens" / "registry" / "registry.yaml", description="The model registry file.")
    model_cache_dir: Path = Field(Path.home() / ".cache" / "damagelens", description="Where s3:// weights are cached.")
    device: str = Field("auto", description="`auto`, `cpu`, `cuda` or `cuda:N`; FP16 is used on CUDA.")
    cam_method: CamMethod = Field("gradcam", description="Default Grad-CAM method.")
    detect_conf: float = Field(0.25, ge=0, le=1, description="Detector confidence threshold.")
    detect_imgsz: int = Field(640, ge=32, description="Detector input size.")
    worker_concurrency: int = Field(1, ge=1, description="Celery child processes per worker (each holds its own models).")
    torch_threads: int = Field(
        1,
        ge=0,
        description="torch threads per worker child; 1 avoids oversubscription when workers share cores (0 = torch default).",
    )

    # data and logs
    data_dir: Path = Field(REPO_ROOT.parent / "shared" / "data", description="Read-only photos for training, evaluation and tests.")
    pretrained_dir: Path | None = Field(
        None,
        description="Converted ImageNet backbones (`damagelens pretrained-cache`), used instead of the PyPI weight packages when set.",
    )
    log_level: str = Field("INFO", description="Log level.")
    log_json: bool = Field(True, description="JSON log lines (with job id) instead of plain text.")

    # API for shared deployments: inspections, idempotency, keys, quotas, back-pressure
    auth: Literal["off", "on"] = Field(
        "off", description="`on`: every API call needs `Authorization: Bearer <key>` (keys from `damagelens keys create`)."
    )
    inspection_max_photos: int = Field(24, ge=1, description="Most photos in one inspection (`POST /v1/inspections`).")
    inspection_max_bytes: int = Field(
        200 * 1024 * 1024, ge=1, description="Largest inspection request body, all photos together (413 above)."
    )
    review_threshold: float = Field(
        0.5, ge=0, le=1, description="Top probability below which a photo is uncertain, when the model card gives no `review_threshold`."
    )
    idempotency_ttl_seconds: int = Field(86_400, ge=60, description="How long an `Idempotency-Key` and its first answer are kept.")
    default_rate_limit: str = Field(
        "60/min", description="Requests per key and period (`N/s`, `N/min`, `N/h`) for keys created without `--rate`."
    )
    default_max_queued: int = Field(200, ge=1, description="Unfinished jobs per key for keys created without `--max-queued` (429 above).")
    webhook_secret: str | None = Field(
        None, description="Signs webhooks (Standard Webhooks, `whsec_…`) of jobs made without an API key; webhooks are refused while unset."
    )
    webhook_allow_http: bool = Field(False, description="Accept plain http:// webhook URLs (https only otherwise).")
    webhook_allowlist: list[str] = Field(
        default_factory=list,
        description='Hosts or networks (JSON list, e.g. ["127.0.0.1/32"]) webhooks may reach although not public (tests, local setups).',
    )
    webhook_max_attempts: int = Field(8, ge=1, description="Deliveries tried per event before giving up.")
    webhook_retry_base_seconds: float = Field(
        30.0,
        gt=0,
        description="First retry delay; doubles each time, capped at half the visibility timeout (8 attempts at 30 s span about 23 min).",
    )
    webhook_timeout_seconds: float = Field(10.0, gt=0, description="Connect and answer timeout of one delivery.")
    max_queue_depth: int = Field(
        1000, ge=1, description="Submits get 503 + Retry-After while any stage queue they need holds more tasks than this."
    )

    # reliability: worker heartbeats, the reaper, live updates
    heartbeat_interval_seconds: float = Field(2.0, gt=0, description="How often each worker process refreshes its heartbeat key.")
    heartbeat_ttl_seconds: int = Field(
        10, ge=2, description="A worker whose heartbeat is older than this is dead: the reaper re-enqueues its running stages."
    )
    reaper_interval_seconds: float = Field(2.0, gt=0, description="How often the reaper (`damagelens reaper`) looks for orphaned stages.")
    sse_fallback_poll_seconds: float = Field(
        5.0, gt=0, description="Live-update streams re-read the job this often even without a pub/sub message (nothing is missed)."
    )

    # assess stage (damage type per region, severity per photo)
    severity_model: str = Field("severity", description="Registry name of the photo-level severity model (assess stage).")
    region_severity_model: str = Field(
        "severity-v1",
        description="Registry name of the severity model run on a crop of each typed region (assess stage; `severity-v1` is "
        "better per region on lensor val + test, docs/models/severity.md). The same entry as `severity_model` shares its batch.",
    )
    damage_types_model: str = Field("damage-types", description="Registry name of the typed damage detector (assess stage).")
    assess_conf: float = Field(
        0.08, ge=0, le=1, description="Confidence threshold of the typed detector (0.08 maximises its mean F1 on lensor val)."
    )
    assess_imgsz: int = Field(416, ge=32, description="Input size of the typed detector (what it was trained at).")

    # performance: inference backends (docs/benchmarks.md)
    inference_backend: Literal["torch", "onnxruntime"] = Field(
        "onnxruntime",
        description="Classifier and YOLO detector forward passes (classify, detect, assess): `onnxruntime` (the registry model "
        "exported to `model_cache_dir/onnx` on first use, keyed by its sha256) or `torch`. Grad-CAM always runs in torch. "
        "Default chosen by `scripts/bench_models.py --backends`.",
    )

    # performance: what the stages spend outside the models (docs/benchmarks.md, scripts/bench_stages.py)
    work_max_side: int = Field(
        2560,
        ge=0,
        description="Workers reduce photos with a longer side by the smallest integer factor that fits (JPEG decoded at reduced "
        "scale), so the stages work on ≤ this many pixels per side (models see ≤ 640); boxes and `image_width/height` stay in the "
        "original's pixels. 2560 keeps ≥ 1280 px (the overlay size) for every larger photo. 0 = full size.",
    )

    # performance: micro-batching in the stage workers (docs/benchmarks.md, "Micro-batching")
    batch_size: int = Field(
        1,
        ge=1,
        le=256,
        description="Most queued tasks a stage worker runs in one forward pass (celery-batches); 1 = no batching, the plain task path.",
    )
    batch_wait_ms: float = Field(
        20.0, ge=1, le=10_000, description="How long a batching worker waits for its batch to fill before it runs what it has."
    )
    batch_size_classify: int | None = Field(None, ge=1, le=256, description="`batch_size` of the classify queue (unset: `batch_size`).")
    batch_size_explain: int | None = Field(None, ge=1, le=256, description="`batch_size` of the explain queue (unset: `batch_size`).")
    batch_size_detect: int | None = Field(None, ge=1, le=256, description="`batch_size` of the detect queue (unset: `batch_size`).")
    batch_size_assess: int | None = Field(None, ge=1, le=256, description="`batch_size` of the assess queue (unset: `batch_size`).")

    def batch_size_for(self, queue: str) -> int:
        """The batch size of one stage queue (classify, explain, detect, assess): its own override, else `batch_size`."""
        override = getattr(self, f"batch_size_{queue}", None)
        return override or self.batch_size

    # performance: INT8 classifier graphs (docs/models/int8.md)
    onnx_quantize: Literal["none", "int8"] = Field(
        "none",
        description="With the onnxruntime backend, `int8` serves each classifier's statically quantised graph (calibrated on 128 "
        "seeded photos of `data_dir`'s two 6-class folders, built on first use beside the FP32 export). "
        "Grouped CV accuracy (v2 weights; v3 not validated): `fast` -0.14 pt, `accurate` -0.43 pt, forward 1.5-1.8x faster; "
        "`none` by default: calibration and review threshold are "
        "fitted on FP32 logits, and workers then need the calibration photos (docs/models/int8.md).",
    )

    @field_validator("task_time_limit_seconds")
    @classmethod
    def _hard_after_soft(cls, v: int, info) -> int:
        soft = info.data.get("task_soft_time_limit_seconds", 0)
        if v <= soft:
            raise ValueError("task_time_limit_seconds must exceed task_soft_time_limit_seconds")
        return v

    @field_validator("visibility_timeout_seconds")
    @classmethod
    def _redelivery_after_hard_limit(cls, v: int, info) -> int:
        hard = info.data.get("task_time_limit_seconds", 0)
        if v <= hard:
            raise ValueError("visibility_timeout_seconds must exceed task_time_limit_seconds, or long tasks run twice")
        return v

    @field_validator("heartbeat_ttl_seconds")
    @classmethod
    def _ttl_covers_beats(cls, v: int, info) -> int:
        interval = info.data.get("heartbeat_interval_seconds", 0)
        if v < 2 * interval:
            raise ValueError("heartbeat_ttl_seconds must be at least twice heartbeat_interval_seconds, or live workers look dead")
        return v

    @property
    def stale_stage_seconds(self) -> float:
        """After this long `running`, a stage can no longer finish: its worker and its redelivery are gone."""
        return float(self.task_time_limit_seconds + self.visibility_timeout_seconds + 60)

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or self.redis_url


@lru_cache
def get_settings() -> Settings:
    return Settings()
