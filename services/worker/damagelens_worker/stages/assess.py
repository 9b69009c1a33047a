"""`damagelens.assess`: damage type per region, severity per photo and per region, plus a rendered image."""

from __future__ import annotations

from PIL import Image

from damagelens.imaging import original_size
from damagelens.jobs.state import artifact_url
from damagelens.schemas import Stage, StageTask
from damagelens_worker import model_cache
from damagelens_worker.batching import stage_task
from damagelens_worker.runner import StageOutput

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


def assess_batch(items: list[tuple[StageTask, Image.Image]]) -> list[StageOutput]:
    from damagelens.vision.assess import draw_assessment
    from damagelens.vision.detector import to_jpeg

    images = [image for _, image in items]
    results, speed = model_cache.assessor().assess_batch(images, [artifact_url(payload.job_id, ARTIFACT) for payload, _ in items])
    return [
        StageOutput(
            result=result.model_dump(),
            artifacts={ARTIFACT: (to_jpeg(draw_assessment(image, result)), "image/jpeg")},
            speed_ms=dict(speed),
        )
        for image, result in zip(images, results, strict=True)
    ]


assess_task = stage_task(Stage.assess, assess, assess_batch)
