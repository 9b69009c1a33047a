"""Assess stage building blocks: result shaping, region crops and the rendered assessment image; and the
`Assessor` with the shipped models on real lensor photos (the photo model on the photo, the region model
on each region's crop; skipped when the data folder is absent)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from damagelens.registry import ModelEntry, load_registry
from damagelens.schemas import AssessResult, Detection, SeverityScore
from damagelens.settings import get_settings
from damagelens.vision.assess import (
    MAX_REGIONS,
    SEVERITY_COLOURS,
    TYPE_COLOURS,
    Assessor,
    draw_assessment,
    region_crop,
    severity_scores,
    shape_assessment,
)
from damagelens.vision.detector import to_jpeg
from damagelens.vision.preprocess import normalise, square_resize

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


# ---------------------------------------------------------------- the Assessor with the shipped models

PHOTO_MODEL, REGION_MODEL = "severity", "severity-v1"  # the defaults of severity_model / region_severity_model


@pytest.fixture(scope="module")
def shipped() -> dict:
    """The shipped photo and region severity models (torch, CPU, FP32), the typed detector as the stage
    configures it, and the first 3 lensor test photos (sorted): 0017 and 0190 hold regions the two models label differently."""
    from damagelens.training.data import load_rgb
    from damagelens.vision.detector import Detector
    from damagelens.vision.loading import load_classifier

    settings = get_settings()
    folder = settings.data_dir / "detection" / "lensor" / "images" / "test"
    photos = sorted(folder.glob("*.jpg"))[:3]
    if not photos:
        pytest.skip(f"real photos not available: {folder} is absent or empty (set DAMAGELENS_DATA_DIR)")
    registry = load_registry(settings.registry_path)
    photo_entry, region_entry = registry.get(PHOTO_MODEL, task="severity"), registry.get(REGION_MODEL, task="severity")
    cpu = torch.device("cpu")
    return {
        "photo": (photo_entry, load_classifier(photo_entry, cpu, half=False)),
        "region": (region_entry, load_classifier(region_entry, cpu, half=False)),
        "detector": Detector(registry.get(settings.damage_types_model, task="detect"), "cpu", settings.assess_conf, settings.assess_imgsz),
        "images": [load_rgb(p) for p in photos],
    }


def _probs(entry: ModelEntry, model: nn.Module, images: list[Image.Image]) -> torch.Tensor:
    """One model on its own, image by image (batches of one): what it gives on each image."""
    with torch.inference_mode():
        rows = [
            torch.softmax(model(normalise(square_resize(im, entry.input_size), entry.mean, entry.std)[None]), dim=1)[0] for im in images
        ]
    return torch.stack(rows) if rows else torch.zeros(0, len(entry.labels))


def _as_rows(scores: list[SeverityScore], labels: tuple[str, ...]) -> np.ndarray:
    return np.asarray([[s.probabilities[label] for label in labels] for s in scores])


def test_assessor_scores_the_photo_with_the_photo_model_and_each_region_crop_with_the_region_model(shipped: dict) -> None:
    (photo_entry, photo_model), (region_entry, region_model) = shipped["photo"], shipped["region"]
    assessor = Assessor(photo_entry, photo_model, shipped["detector"], region_entry, region_model)
    assert not assessor.one_batch
    images = shipped["images"]
    results, speed = assessor.assess_batch(images, [""] * len(images))
    assert {"severity_inference", "region_severity_inference"} <= set(speed)
    told_apart = 0
    for image, result in zip(images, results, strict=True):
        assert (result.model, result.region_model, result.region_model_version) == (
            f"{PHOTO_MODEL}+{shipped['detector'].entry.name}",
            REGION_MODEL,
            region_entry.version,
        )
        photo = _probs(photo_entry, photo_model, [image])
        assert _as_rows([result.severity], photo_entry.labels) == pytest.approx(photo.numpy(), abs=1e-3)
        assert result.damages, "each of these photos has typed regions"
        crops = [region_crop(image, d.box) for d in result.damages[:MAX_REGIONS]]
        by_region, by_photo_model = _probs(region_entry, region_model, crops), _probs(photo_entry, photo_model, crops)
        assert [d.severity for d in result.damages] == [region_entry.labels[i] for i in by_region.argmax(1).tolist()]
        assert _as_rows(assessor.region_severity(crops), region_entry.labels) == pytest.approx(by_region.numpy(), abs=1e-3)
        told_apart += int((by_region.argmax(1) != by_photo_model.argmax(1)).sum())
    assert told_apart >= 2, "the photos must hold regions the two models label differently, or this test proves nothing"


def test_assessor_with_one_severity_model_scores_photo_and_crops_in_one_batch(shipped: dict) -> None:
    (photo_entry, photo_model) = shipped["photo"]
    assessor = Assessor(photo_entry, photo_model, shipped["detector"])
    assert assessor.one_batch and assessor.region_entry == photo_entry
    images = shipped["images"]
    results, speed = assessor.assess_batch(images, [""] * len(images))
    assert "severity_inference" in speed and not any(k.startswith("region_") for k in speed)
    for image, result in zip(images, results, strict=True):
        assert (result.region_model, result.region_model_version) == (photo_entry.name, photo_entry.version)
        assert _as_rows([result.severity], photo_entry.labels) == pytest.approx(_probs(photo_entry, photo_model, [image]).numpy(), abs=1e-3)
        crops = [region_crop(image, d.box) for d in result.damages[:MAX_REGIONS]]
        assert [d.severity for d in result.damages] == [
            photo_entry.labels[i] for i in _probs(photo_entry, photo_model, crops).argmax(1).tolist()
        ]


def test_assessor_warm_up_runs_both_severity_models_on_a_blank_photo(shipped: dict) -> None:
    (photo_entry, photo_model), (region_entry, region_model) = shipped["photo"], shipped["region"]
    assessor = Assessor(photo_entry, photo_model, shipped["detector"], region_entry, region_model)
    blank = Image.new("RGB", (320, 240), (128, 128, 128))
    ran: list[str] = []
    hooks = [
        m.register_forward_hook(lambda *_, name=name: ran.append(name)) for name, m in (("photo", photo_model), ("region", region_model))
    ]
    try:
        assessor.warm_up(blank)
    finally:
        for hook in hooks:
            hook.remove()
    assert sorted(ran) == ["photo", "region"]


def test_assessor_refuses_a_region_model_without_its_entry_or_one_model_for_two_entries() -> None:
    registry = load_registry(get_settings().registry_path)
    photo_entry, region_entry = registry.get(PHOTO_MODEL, task="severity"), registry.get(REGION_MODEL, task="severity")
    model = nn.Linear(1, 3)
    with pytest.raises(ValueError, match="with its registry entry"):
        Assessor(photo_entry, model, None, region_entry, None)
    with pytest.raises(ValueError, match="one model object given for two entries"):
        Assessor(photo_entry, model, None, region_entry, model)
