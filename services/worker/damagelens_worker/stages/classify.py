"""`damagelens.classify`: six-class view × condition probabilities."""

from __future__ import annotations

from PIL import Image

from damagelens.schemas import Stage, StageTask
from damagelens_worker import model_cache
from damagelens_worker.batching import stage_task
from damagelens_worker.runner import StageOutput


def classify(payload: StageTask, image: Image.Image) -> StageOutput:
    result, speed = model_cache.classify(payload.model, image)
    return StageOutput(result=result.model_dump(), speed_ms=speed)


def classify_batch(items: list[tuple[StageTask, Image.Image]]) -> list[StageOutput]:
    """One forward pass per model named in the batch (requests may ask for different classifiers)."""
    outputs: list[StageOutput | None] = [None] * len(items)
    for name in dict.fromkeys(payload.model for payload, _ in items):
        indices = [i for i, (payload, _) in enumerate(items) if payload.model == name]
        results, speed = model_cache.classify_batch(name, [items[i][1] for i in indices])
        for i, result in zip(indices, results, strict=True):
            outputs[i] = StageOutput(result=result.model_dump(), speed_ms=dict(speed))
    return outputs  # type: ignore[return-value]


classify_task = stage_task(Stage.classify, classify, classify_batch)
