"""Assess stage building blocks: result shaping, region crops and the rendered assessment image."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from damagelens.schemas import AssessResult, Detection, SeverityScore
from damagelens.vision.assess import (
    SEVERITY_COLOURS,
    TYPE_COLOURS,
    draw_assessment,
    region_crop,
    severity_scores,
    shape_assessment,
)
from damagelens.vision.detector import to_jpeg

LABELS = ("minor", "moderate", "severe")


def _det(label: str, conf: float, box: list[float], w: int = 400, h: int = 300) -> Detection:
    return Detection(label=label, confidence=conf, box=box, box_normalized=[box[0] / w, box[1] / h, box[2] / w, box[3] / h])


def _score(label: str, conf: float) -> SeverityScore:
    rest = (1 - conf) / 2
    return SeverityScore(label=label, confidence=conf, probabilities={lab: conf if lab == label else rest for lab in LABELS})


def test_severity_scores_pick_the_argmax_and_keep_every_probability() -> None:
    probs = torch.tensor([[0.2, 0.7, 0.1], [0.05, 0.15, 0.8]])
    scores = severity_scores(probs, LABELS)
    assert [s.label for s in scores] == ["moderate", "severe"]
    assert scores[0].confidence == pytest.approx(0.7)
    assert scores[1].probabilities == pytest.approx({"minor": 0.05, "moderate": 0.15, "severe": 0.8})


def test_shape_assessment_counts_types_and_gives_each_region_its_severity() -> None:
    dets = [_det("scratch", 0.9, [10, 10, 50, 40]), _det("dent", 0.6, [100, 80, 200, 160]), _det("scratch", 0.4, [300, 10, 390, 60])]
    regions = [_score("minor", 0.8), _score("moderate", 0.5)]  # the third region was not scored: takes the photo's
    result = shape_assessment(_score("severe", 0.7), dets, regions, 400, 300, "/v1/jobs/j/artifacts/assessment.jpg", "s+d", "1+1")
    assert result.counts.model_dump() == {"dent": 1, "scratch": 2, "broken": 0}
    assert [(d.type, d.severity) for d in result.damages] == [("scratch", "minor"), ("dent", "moderate"), ("scratch", "severe")]
    assert result.damages[1].box == [100, 80, 200, 160]
    assert result.damages[1].box_normalized == pytest.approx([0.25, 80 / 300, 0.5, 160 / 300])
    # the job document's shape: severity{label,confidence,probabilities}, damages, counts, image_url, model, model_version
    dumped = AssessResult.model_validate(result.model_dump()).model_dump()
    assert set(dumped) >= {"severity", "damages", "counts", "image_url", "model", "model_version"}
    assert set(dumped["severity"]) == {"label", "confidence", "probabilities"}
    assert set(dumped["damages"][0]) == {"type", "severity", "confidence", "box", "box_normalized"}


def test_shape_assessment_rejects_a_detector_with_other_labels() -> None:
    with pytest.raises(ValueError, match="not a damage type"):
        shape_assessment(_score("minor", 0.9), [_det("damage", 0.9, [0, 0, 10, 10])], [], 400, 300, "u", "m", "v")


def test_region_crop_adds_context_and_stays_inside_the_photo() -> None:
    image = Image.new("RGB", (400, 300))
    crop = region_crop(image, [380, 280, 400, 300])  # a tiny box in the corner
    assert crop.width >= 0.2 * 300 - 1 and crop.height >= 0.2 * 300 - 1  # never smaller than 20 % of the short side
    big = region_crop(image, [0, 0, 400, 300])
    assert big.size == (400, 300)  # clipped to the photo


def _pixels_near(image: Image.Image, colour: tuple[int, int, int], tol: int = 40) -> int:
    arr = np.asarray(image.convert("RGB")).astype(int)
    return int((np.abs(arr - np.asarray(colour)).max(axis=2) <= tol).sum())


def test_draw_assessment_colours_boxes_by_type_with_a_legend_and_a_severity_badge() -> None:
    photo = Image.new("RGB", (640, 480), (128, 128, 128))
    dets = [_det("dent", 0.9, [100, 150, 300, 350], 640, 480), _det("broken", 0.7, [350, 200, 600, 450], 640, 480)]
    result = shape_assessment(_score("severe", 0.8), dets, [_score("moderate", 0.6)] * 2, 640, 480, "u", "m", "v")
    drawn = draw_assessment(photo, result)
    assert drawn.size == photo.size and photo.getpixel((0, 0)) == (128, 128, 128)  # the input is not drawn on
    assert _pixels_near(drawn, TYPE_COLOURS["dent"]) > 300
    assert _pixels_near(drawn, TYPE_COLOURS["broken"]) > 300
    assert _pixels_near(drawn, TYPE_COLOURS["scratch"]) > 0  # the legend lists every type, even with no box
    badge = drawn.crop((320, 0, 640, 60))  # top-right corner
    assert _pixels_near(badge, SEVERITY_COLOURS["severe"]) > 200
    decoded = Image.open(io.BytesIO(to_jpeg(drawn)))
    assert decoded.format == "JPEG" and decoded.size == (640, 480)


def test_draw_assessment_with_no_damage_still_shows_the_severity() -> None:
    photo = Image.new("RGB", (300, 200), (200, 200, 200))
    result = shape_assessment(_score("minor", 0.9), [], [], 300, 200, "u", "m", "v")
    drawn = draw_assessment(photo, result)
    assert result.counts.model_dump() == {"dent": 0, "scratch": 0, "broken": 0}
    assert _pixels_near(drawn, SEVERITY_COLOURS["minor"]) > 100
