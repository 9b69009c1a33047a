"""`damagelens.detect`: damage boxes from the YOLO detector, plus a rendered image."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PIL import Image

from damagelens.imaging import original_size
from damagelens.jobs.state import artifact_url
from damagelens.schemas import DetectResult, Stage, StageTask
from damagelens_worker import model_cache
from damagelens_worker.batching import stage_task
from damagelens_worker.runner import StageOutput

if TYPE_CHECKING:
    from damagelens.vision.detector import Detector


def detect(payload: StageTask, image: Image.Image) -> StageOutput:
    detector = model_cache.detector()
    detections, speed = detector(image)  # on the working-size image: drawn on it, stored in original pixels
    return _output(detector, payload, image, detections, speed)


def detect_batch(items: list[tuple[StageTask, Image.Image]]) -> list[StageOutput]:
    detector = model_cache.detector()
    all_detections, speed = detector.detect_batch([image for _, image in items])
    return [
        _output(detector, payload, image, detections, dict(speed))
        for (payload, image), detections in zip(items, all_detections, strict=True)
    ]


def _output(detector: Detector, payload: StageTask, image: Image.Image, detections: list, speed: dict[str, float]) -> StageOutput:
    from damagelens.vision.detector import draw_detections, to_jpeg
    from damagelens.vision.rescale import detections_to_original

    width, height = original_size(image)
    result = DetectResult(
        detections=detections_to_original(detections, image.size, (width, height)),
        total_detections=len(detections),
        image_width=width,
        image_height=height,
        image_url=artifact_url(payload.job_id, "detection.jpg"),
        model=detector.entry.name,
        model_version=detector.entry.version,
    )
    return StageOutput(
        result=result.model_dump(),
        artifacts={"detection.jpg": (to_jpeg(draw_detections(image, detections)), "image/jpeg")},
        speed_ms=speed,
    )


detect_task = stage_task(Stage.detect, detect, detect_batch)
