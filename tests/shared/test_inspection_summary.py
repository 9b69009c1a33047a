"""The vehicle summary from per-photo jobs: worst condition per view, regions, uncertain photos."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from damagelens.inspections import InspectionMeta, inspection_public, is_uncertain, uncertainty_threshold
from damagelens.inspections.summary import aggregate_status
from damagelens.schemas import (
    ClassifyResult,
    DetectResult,
    ErrorInfo,
    InputInfo,
    InspectionPhoto,
    JobLinks,
    JobPublic,
    JobResults,
    Stage,
    Status,
)

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


class ReviewedResult(ClassifyResult):
    """What the classifier result looks like once it carries the `review` flag."""

    review: bool = False


def _job(job_id: str, label: str, confidence: float, regions: int, status: Status = Status.succeeded, cls=ClassifyResult, **extra):
    probs = {label: confidence}
    result = cls(label=label, confidence=confidence, probabilities=probs, model="fast", model_version="1.0.0", **extra)
    detection = DetectResult(
        detections=[], total_detections=regions, image_width=10, image_height=10, image_url="/x", model="detector", model_version="1"
    )
    return JobPublic(
        id=job_id,
        status=status,
        progress=1.0,
        model="fast",
        tasks=[Stage.classify, Stage.detect],
        created_at=NOW,
        updated_at=NOW,
        finished_at=NOW,
        input=InputInfo(filename=f"{job_id}.jpg", content_type="image/jpeg", width=10, height=10, url="/x"),
        stages={},
        results=JobResults(classification=result, detection=detection),
        error=None,
        links=JobLinks(self="/x", events="/x", input="/x"),
    )


def test_worst_condition_per_view_regions_and_uncertain_photos() -> None:
    jobs = {
        "a": _job("a", "Front Breakage", 0.9, 2),
        "b": _job("b", "Front Crushed", 0.6, 1),  # crushed beats breakage whatever the confidence
        "c": _job("c", "Rear Normal", 0.95, 0),
        "d": _job("d", "Rear Breakage", 0.4, 3),  # below the 0.5 threshold: uncertain
        "e": _job("e", "Rear Normal", 0.99, 0, cls=ReviewedResult, review=True),  # flagged by the model
    }
    photos = [InspectionPhoto(index=i, filename=f"{j}.jpg", job_id=j, status=Status.queued) for i, j in enumerate(jobs)]
    photos.append(
        InspectionPhoto(index=5, filename="bad.jpg", job_id=None, status=Status.failed, error=ErrorInfo(code="invalid_image", message="x"))
    )
    meta = InspectionMeta(id="i", reference=None, model="fast", tasks=[Stage.classify], created_at=NOW, photos=photos)
    doc = inspection_public(meta, jobs, threshold=0.5)
    assert doc.status == Status.succeeded and doc.progress == 1.0
    assert (doc.summary.front.condition, doc.summary.front.job_id, doc.summary.front.photo_index) == ("Crushed", "b", 1)
    assert (doc.summary.rear.condition, doc.summary.rear.job_id) == ("Breakage", "d")
    assert doc.summary.damage_regions == 6
    assert [u.job_id for u in doc.summary.uncertain_photos] == ["d", "e"]
    assert doc.summary.photos_failed == 1 and doc.photos[5].error.code == "invalid_image"


def test_threshold_comes_from_the_model_card_when_it_has_one() -> None:
    assert uncertainty_threshold(SimpleNamespace(review_threshold=0.7), 0.5) == 0.7
    assert uncertainty_threshold(SimpleNamespace(), 0.5) == 0.5
    assert uncertainty_threshold(None, 0.4) == 0.4
    plain = ClassifyResult(label="Front Normal", confidence=0.6, probabilities={}, model="m", model_version="1")
    assert is_uncertain(plain, 0.7) and not is_uncertain(plain, 0.5)


def test_status_of_a_batch() -> None:
    assert aggregate_status([Status.queued, Status.failed], canceled=False) == Status.queued
    assert aggregate_status([Status.running, Status.queued], canceled=False) == Status.running
    assert aggregate_status([Status.succeeded, Status.failed], canceled=False) == Status.succeeded
    assert aggregate_status([Status.failed, Status.failed], canceled=False) == Status.failed
    assert aggregate_status([Status.canceled, Status.failed], canceled=True) == Status.canceled
