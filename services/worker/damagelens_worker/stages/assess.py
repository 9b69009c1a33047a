"""`damagelens.assess`: damage type per region, severity per photo and per region, plus a rendered image."""

from __future__ import annotations

from PIL import Image

from damagelens.imaging import original_size
from damagelens.jobs.state import artifact_url
from damagelens.schemas import AssessResult, Stage, StageTask
from damagelens_worker import model_cache
from damagelens_worker.batching import stage_task
from damagelens_worker.runner import StageOutput

ARTIFACT = "assessment.jpg"


def assess(payload: StageTask, image: Image.Image) -> StageOutput:
    result, speed = model_cache.assessor()(image, artifact_url(payload.job_id, ARTIFACT))  # on the working-size image
    return _output(image, result, speed)


def assess_batch(items: list[tuple[StageTask, Image.Image]]) -> list[StageOutput]:
    images = [image for _, image in items]
    results, speed = model_cache.assessor().assess_batch(images, [artifact_url(payload.job_id, ARTIFACT) for payload, _ in items])
    return [_output(image, result, dict(speed)) for image, result in zip(images, results, strict=True)]


def _output(image: Image.Image, result: AssessResult, speed: dict[str, float]) -> StageOutput:
    """Drawn on the working-size image, stored in the original photo's pixels (both paths alike)."""
    from damagelens.vision.assess import draw_assessment
    from damagelens.vision.detector import to_jpeg
    from damagelens.vision.rescale import assessment_to_original

    picture = to_jpeg(draw_assessment(image, result))
    result = assessment_to_original(result, image.size, original_size(image))
    return StageOutput(result=result.model_dump(), artifacts={ARTIFACT: (picture, "image/jpeg")}, speed_ms=speed)


assess_task = stage_task(Stage.assess, assess, assess_batch)
