"""`damagelens.explain`: Grad-CAM overlay and raw heatmap for the predicted class."""

from __future__ import annotations

from PIL import Image

from damagelens.jobs.state import artifact_url
from damagelens.schemas import ExplainResult, Stage, StageTask
from damagelens.settings import get_settings
from damagelens.tasks import TASK_NAMES
from damagelens_worker import model_cache
from damagelens_worker.celery_app import app
from damagelens_worker.runner import TASK_OPTIONS, StageOutput, run_stage


def explain(payload: StageTask, image: Image.Image) -> StageOutput:
    method = payload.cam_method or get_settings().cam_method
    explainer = model_cache.explainer(payload.model, method)
    explanation, speed = explainer(image)
    result = ExplainResult(
        method=explanation.method,
        target_label=explanation.target_label,
        overlay_url=artifact_url(payload.job_id, "overlay.jpg"),
        heatmap_url=artifact_url(payload.job_id, "heatmap.png"),
        model=explainer.entry.name,
        model_version=explainer.entry.version,
    )
    return StageOutput(
        result=result.model_dump(),
        artifacts={
            "overlay.jpg": (explanation.overlay_jpeg(), "image/jpeg"),
            "heatmap.png": (explanation.heatmap_png(), "image/png"),
        },
        speed_ms=speed,
    )


@app.task(name=TASK_NAMES[Stage.explain], **TASK_OPTIONS)
def explain_task(self, payload: dict) -> dict:
    return run_stage(self, payload, explain)
