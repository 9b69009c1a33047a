"""`damagelens.detect`: damage boxes from the YOLO detector, plus a rendered image."""

from __future__ import annotations

from PIL import Image

from damagelens.imaging import original_size
from damagelens.jobs.state import artifact_url
from damagelens.schemas import DetectResult, Stage, StageTask
from damagelens.tasks import TASK_NAMES
from damagelens_worker import model_cache
from damagelens_worker.celery_app import app
from damagelens_worker.runner import TASK_OPTIONS, StageOutput, run_stage


def detect(payload: StageTask, image: Image.Image) -> StageOutput:
    from damagelens.vision.detector import draw_detections, to_jpeg
    from damagelens.vision.rescale import detections_to_original

    detector = model_cache.detector()
    detections, speed = detector(image)  # on the working-size image: drawn on it, stored in original pixels
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


@app.task(name=TASK_NAMES[Stage.detect], **TASK_OPTIONS)
def detect_task(self, payload: dict) -> dict:
    return run_stage(self, payload, detect)
