"""Per-process model cache: filled lazily (or by warm-up in the child), never before a fork."""

from __future__ import annotations

import logging
import os
import threading
from functools import lru_cache

import torch

from damagelens.registry import ModelEntry, load_registry
from damagelens.settings import get_settings

log = logging.getLogger(__name__)
_lock = threading.Lock()
QUEUE_ENV = "DAMAGELENS_WORKER_QUEUE"


def registry():
    return load_registry(get_settings().registry_path)


@lru_cache(maxsize=1)
def device() -> torch.device:
    from damagelens.vision.loading import resolve_device

    settings = get_settings()
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    return resolve_device(settings.device)


@lru_cache(maxsize=8)
def classifier(name: str) -> tuple[ModelEntry, torch.nn.Module]:
    from damagelens.vision.loading import load_classifier

    entry = registry().get(name, task="classify")
    with _lock:
        return entry, load_classifier(entry, device())


@lru_cache(maxsize=8)
def onnx_classifier(name: str):
    """The entry's ONNX Runtime session (exported into the model cache on first use)."""
    from damagelens.vision.onnx_backend import OnnxClassifier, ensure_onnx

    settings = get_settings()
    entry = registry().get(name, task="classify")
    with _lock:
        path = ensure_onnx(entry, settings.model_cache_dir)
        if settings.onnx_quantize == "int8":  # docs/models/int8.md
            from damagelens.vision.quantize import ensure_int8

            path = ensure_int8(entry, path, settings.data_dir)
        return OnnxClassifier(entry, path, str(device()), settings.torch_threads)


def classify(name: str, image):
    """Classify one image with the configured backend (`DAMAGELENS_INFERENCE_BACKEND`)."""
    if get_settings().inference_backend == "onnxruntime":
        return onnx_classifier(name)(image)
    from damagelens.vision.classify import classify_image

    entry, model = classifier(name)
    return classify_image(model, entry, image)


def classify_batch(name: str, images: list):
    """`classify` over a batch: one forward pass with the configured backend."""
    if get_settings().inference_backend == "onnxruntime":
        return onnx_classifier(name).classify_batch(images)
    from damagelens.vision.classify import classify_images

    entry, model = classifier(name)
    return classify_images(model, entry, images)


@lru_cache(maxsize=4)
def float_classifier(name: str) -> tuple[ModelEntry, torch.nn.Module]:
    """A float32 copy for Grad-CAM (FP16 gradients are unstable); on CPU it is the only copy loaded."""
    from damagelens.vision.loading import load_classifier

    entry = registry().get(name, task="classify")
    if device().type == "cpu":
        return classifier(name)
    with _lock:
        return entry, load_classifier(entry, device(), half=False)


@lru_cache(maxsize=16)
def explainer(name: str, method: str):
    """One Explainer per (model, CAM method), all sharing the model's float32 weights."""
    from damagelens.vision.explain import Explainer

    entry, model = float_classifier(name)
    return Explainer(model, entry, method)


def _yolo(entry: ModelEntry, conf: float, imgsz: int):
    """A YOLO detector on the configured backend (call under `_lock`): ONNX Runtime exports the `.pt`
    into the model cache once per weight sha256; both answer `(detections, speed_ms)` alike."""
    settings = get_settings()
    if settings.inference_backend == "onnxruntime":
        from damagelens.vision.onnx_detector import OnnxDetector, ensure_detector_onnx

        path = ensure_detector_onnx(entry, settings.model_cache_dir)
        return OnnxDetector(entry, path, str(device()), conf=conf, imgsz=imgsz, threads=settings.torch_threads)
    from damagelens.vision.detector import Detector

    return Detector(entry, device=str(device()), conf=conf, imgsz=imgsz)


@lru_cache(maxsize=2)
def detector(name: str | None = None):
    settings = get_settings()
    entry = registry().get(name or settings.detector_model, task="detect")
    with _lock:
        return _yolo(entry, settings.detect_conf, settings.detect_imgsz)


def _severity_model(entry: ModelEntry) -> torch.nn.Module:
    """A severity classifier on the configured backend (call under `_lock`): ONNX Runtime (exported into the
    model cache once per weight sha256) behind `OnnxModule`, so the assess code calls either as `model(batch)`."""
    from damagelens.vision.loading import load_classifier

    settings = get_settings()
    if settings.inference_backend == "onnxruntime":
        from damagelens.vision.onnx_backend import OnnxClassifier, ensure_onnx
        from damagelens.vision.onnx_module import OnnxModule

        session = OnnxClassifier(entry, ensure_onnx(entry, settings.model_cache_dir), str(device()), settings.torch_threads)
        return OnnxModule(session)
    return load_classifier(entry, device())


@lru_cache(maxsize=1)
def assessor():
    """Typed detector + photo severity model + region severity model for the assess stage (names from
    settings); when both severity names resolve to one entry it is loaded once and scores photo and crops in one batch."""
    from damagelens.vision.assess import Assessor

    settings = get_settings()
    severity = registry().get(settings.severity_model, task="severity")
    region = registry().get(settings.region_severity_model, task="severity")
    typed = registry().get(settings.damage_types_model, task="detect")
    with _lock:
        detector = _yolo(typed, settings.assess_conf, settings.assess_imgsz)
        photo_model = _severity_model(severity)
        if region.name == severity.name:
            return Assessor(severity, photo_model, detector)
        return Assessor(severity, photo_model, detector, region, _severity_model(region))


def served_classifiers() -> list[str]:
    """The classifier names clients reach: the default and the aliased current versions. Kept older
    versions (`fast-v1`, …) load on their first request instead of slowing every start."""
    default = registry().get(get_settings().default_model, task="classify").name
    return [e.name for e in registry().list("classify") if e.name == default or (e.trained and e.aliases)]


def warm_up(queue: str) -> None:
    """Load and run each served model once so the first real job pays no start-up cost."""
    from PIL import Image

    settings = get_settings()
    blank = Image.new("RGB", (320, 240), (128, 128, 128))
    if queue == "classify":
        for name in served_classifiers():
            classify(name, blank)
    elif queue == "explain":
        # every served classifier: a first `model=accurate` Grad-CAM would otherwise pay the load
        for name in served_classifiers():
            explainer(name, settings.cam_method)(blank)
    elif queue == "detect":
        detector()(blank)
    elif queue == "assess":
        assessor().warm_up(blank)  # detector, photo and region severity models
    log.info("worker warm", extra={"queue": queue, "device": str(device())})


def warm_up_from_env() -> None:
    queue = os.environ.get(QUEUE_ENV)
    if queue:
        warm_up(queue)
