"""Serving-side calibration: the entry's temperature scales the logits and the review flag follows its threshold."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from damagelens.registry import ModelEntry
from damagelens.schemas import SEED_LABELS
from damagelens.vision.architectures import build_architecture
from damagelens.vision.classify import classify_image
from damagelens.vision.preprocess import to_input_tensor


def _entry(**kw) -> ModelEntry:
    base = {"variant": 0, "split": 6, "structured": True}
    return ModelEntry(
        name="t", task="classify", architecture="lite_single", version="2", labels=SEED_LABELS, input_size=64, options=base, **kw
    )


@pytest.fixture(scope="module")
def model_and_image():
    torch.manual_seed(0)
    model = build_architecture(_entry()).eval()
    with torch.no_grad():
        model.head.inter.bias.copy_(torch.tensor([3.0, 0.5, 0.0, -1.0, 0.2, 0.1]))  # a clear, not certain, winner
    rng = np.random.default_rng(0)
    return model, Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8))


def test_temperature_scales_the_served_probabilities(model_and_image):
    model, image = model_and_image
    with torch.no_grad():
        logits = model(to_input_tensor(image, _entry()))[0]
    for t in (1.0, 2.5):
        result, _ = classify_image(model, _entry(temperature=t), image)
        expected = torch.softmax(logits / t, 0)
        assert list(result.probabilities.values()) == pytest.approx(expected.tolist(), abs=1e-5)
        assert result.label == SEED_LABELS[int(logits.argmax())]  # calibration never changes the answer
    sharp, _ = classify_image(model, _entry(temperature=1.0), image)
    soft, _ = classify_image(model, _entry(temperature=2.5), image)
    assert soft.confidence < sharp.confidence


def test_review_flag_follows_the_threshold(model_and_image):
    model, image = model_and_image
    result, _ = classify_image(model, _entry(), image)
    assert result.review is False  # no threshold: never flagged
    below, _ = classify_image(model, _entry(review_threshold=min(1.0, result.confidence + 0.01)), image)
    above, _ = classify_image(model, _entry(review_threshold=result.confidence - 0.01), image)
    assert below.review is True and above.review is False
    assert below.model_dump()["review"] is True  # serialised into the job document as results.classification.review
