"""Classification of one upright RGB image: calibrated probabilities (the entry's temperature) and the review flag."""

from __future__ import annotations

import torch
from PIL import Image
from torch import nn

from damagelens.registry import ModelEntry
from damagelens.schemas import ClassifyResult
from damagelens.vision.loading import model_dtype
from damagelens.vision.preprocess import to_input_tensor
from damagelens.vision.timing import StageTimer


def needs_review(confidence: float, entry: ModelEntry) -> bool:
    """Below the entry's review threshold (chosen so that accepted predictions are ≥ 95 % correct
    out of fold) a person should check the photo; entries without a threshold never flag."""
    return entry.review_threshold is not None and confidence < entry.review_threshold


def result_from_logits(logits: torch.Tensor, entry: ModelEntry) -> ClassifyResult:
    """Calibrated probabilities from one image's raw logits; shared by the torch and ONNX Runtime backends."""
    probs = torch.softmax(torch.as_tensor(logits, dtype=torch.float32).cpu() / entry.temperature, dim=0).tolist()
    best = max(range(len(probs)), key=probs.__getitem__)
    return ClassifyResult(
        label=entry.labels[best],
        confidence=round(probs[best], 6),
        probabilities={label: round(p, 6) for label, p in zip(entry.labels, probs, strict=True)},
        model=entry.name,
        model_version=entry.version,
        review=needs_review(probs[best], entry),
    )


@torch.inference_mode()
def classify_image(model: nn.Module, entry: ModelEntry, image: Image.Image) -> tuple[ClassifyResult, dict[str, float]]:
    timer = StageTimer()
    device = next(model.parameters()).device
    with timer("preprocess"):
        batch = to_input_tensor(image, entry).to(device=device, dtype=model_dtype(model))
    with timer("inference"):
        logits = model(batch).float()
    with timer("postprocess"):
        result = result_from_logits(logits[0], entry)
    return result, timer.ms


@torch.inference_mode()
def classify_images(model: nn.Module, entry: ModelEntry, images: list[Image.Image]) -> tuple[list[ClassifyResult], dict[str, float]]:
    """`classify_image` over a batch: one forward pass; timings are the batch's."""
    timer = StageTimer()
    device = next(model.parameters()).device
    with timer("preprocess"):
        batch = torch.cat([to_input_tensor(image, entry) for image in images]).to(device=device, dtype=model_dtype(model))
    with timer("inference"):
        logits = model(batch).float()
    with timer("postprocess"):
        results = [result_from_logits(row, entry) for row in logits]
    return results, timer.ms
