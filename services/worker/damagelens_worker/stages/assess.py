"""`damagelens.assess`: damage type per region, severity per photo and per region, plus a rendered image."""

from __future__ import annotations

from PIL import Image

from damagelens.imaging import original_size
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
    from damagelens.vision.rescale import assessment_to_original

    assessor = model_cache.assessor()
    result, speed = assessor(image, artifact_url(payload.job_id, ARTIFACT))  # on the working-size image
    picture = to_jpeg(draw_assessment(image, result))
    result = assessment_to_original(result, image.size, original_size(image))
    return StageOutput(
        result=result.model_dump(),
        artifacts={ARTIFACT: (picture, "image/jpeg")},
        speed_ms=speed,
    )


@app.task(name=TASK_NAMES[Stage.assess], **TASK_OPTIONS)
def assess_task(self, payload: dict) -> dict:
    return run_stage(self, payload, assess)
