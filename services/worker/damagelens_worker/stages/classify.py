"""`damagelens.classify`: six-class view × condition probabilities."""

from __future__ import annotations

from PIL import Image

from damagelens.schemas import Stage, StageTask
from damagelens.tasks import TASK_NAMES
from damagelens_worker import model_cache
from damagelens_worker.celery_app import app
from damagelens_worker.runner import TASK_OPTIONS, StageOutput, run_stage


def classify(payload: StageTask, image: Image.Image) -> StageOutput:
    result, speed = model_cache.classify(payload.model, image)
    return StageOutput(result=result.model_dump(), speed_ms=speed)


@app.task(name=TASK_NAMES[Stage.classify], **TASK_OPTIONS)
def classify_task(self, payload: dict) -> dict:
    return run_stage(self, payload, classify)
