"""`damagelens.explain`: Grad-CAM overlay and raw heatmap for the predicted class."""

from __future__ import annotations

from PIL import Image

from damagelens.jobs.state import artifact_url
from damagelens.schemas import ExplainResult, Stage, StageTask
from damagelens.settings import get_settings
from damagelens_worker import model_cache
from damagelens_worker.batching import stage_task
from damagelens_worker.runner import StageOutput


def explain(payload: StageTask, image: Image.Image) -> StageOutput:
    method = payload.cam_method or get_settings().cam_method
    explainer = model_cache.explainer(payload.model, method)
    explanation, speed = explainer(image)
    return _output(explainer, payload, explanation, speed)


def explain_batch(items: list[tuple[StageTask, Image.Image]]) -> list[StageOutput]:
    """One CAM pass per (model, method) named in the batch."""
    outputs: list[StageOutput | None] = [None] * len(items)
    default_method = get_settings().cam_method
    groups: dict[tuple[str, str], list[int]] = {}
    for i, (payload, _) in enumerate(items):
        groups.setdefault((payload.model, payload.cam_method or default_method), []).append(i)
    for (model, method), indices in groups.items():
        explainer = model_cache.explainer(model, method)
        explanations, speed = explainer.explain_batch([items[i][1] for i in indices])
        for i, explanation in zip(indices, explanations, strict=True):
            outputs[i] = _output(explainer, items[i][0], explanation, dict(speed))
    return outputs  # type: ignore[return-value]


def _output(explainer, payload: StageTask, explanation, speed: dict[str, float]) -> StageOutput:
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


explain_task = stage_task(Stage.explain, explain, explain_batch)
