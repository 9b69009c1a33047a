"""`damagelens.assess`: damage type per region, severity per photo and per region, plus a rendered image."""

from __future__ import annotations

from PIL import Image

from damagelens.jobs.state import artifact_url
from damagelens.schemas import Stage, StageTask
from damagelens.tasks import TASK_NAMES
from damagelens_worker import model_cache
from damagelens_worker.celery_app import app
from damagelens_worker.runner import TASK_OPTIONS, StageOutput, run_stage

ARTIFACT = "assessment.jpg"


def assess(payload: StageTask, image: Image.Image) -> StageOutput:
    from damagelens.vision.assess import draw_assessment
    from damagelens.vision.detector import to_jpeg

    assessor = model_cache.assessor()
    result, speed = assessor(image, artifact_url(payload.job_id, ARTIFACT))
    return StageOutput(
        result=result.model_dump(),
        artifacts={ARTIFACT: (to_jpeg(draw_assessment(image, result)), "image/jpeg")},
        speed_ms=speed,
    )


@app.task(name=TASK_NAMES[Stage.assess], **TASK_OPTIONS)
def assess_task(self, payload: dict) -> dict:
    return run_stage(self, payload, assess)
