"""The vehicle summary from per-photo jobs: worst condition per view, regions, uncertain photos."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from damagelens.inspections import InspectionMeta, inspection_public, is_uncertain, uncertainty_threshold
from damagelens.inspections.summary import aggregate_status
from damagelens.schemas import (
    AssessResult,
    ClassifyResult,
    DamageCounts,
    DetectResult,
    ErrorInfo,
    InputInfo,
    InspectionPhoto,
    JobLinks,
    JobPublic,
    JobResults,
    SeverityScore,
    Stage,
    Status,
)

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


class ReviewedResult(ClassifyResult):
    """What the classifier result looks like once it carries the `review` flag."""

    review: bool = False


def _assessment(severity: str, confidence: float, dent: int, scratch: int, broken: int) -> AssessResult:
    return AssessResult(
        severity=SeverityScore(label=severity, confidence=confidence, probabilities={severity: confidence}),
        damages=[],
        counts=DamageCounts(dent=dent, scratch=scratch, broken=broken),
        image_width=10,
        image_height=10,
        image_url="/x",
        model="severity+damage-types",
        model_version="1+1",
    )


def _job(
    job_id: str,
    label: str,
    confidence: float,
    regions: int,
    status: Status = Status.succeeded,
    cls=ClassifyResult,
    assessment: AssessResult | None = None,
    **extra,
):
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
        results=JobResults(classification=result, detection=detection, assessment=assessment),
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
    # assess ran on none of these photos: no severity, no counts (not a misleading "0 damages")
    assert doc.summary.severity is None and doc.summary.damage_counts is None and doc.summary.photos_assessed == 0


def _inspection(jobs: dict, threshold: float = 0.5):
    photos = [InspectionPhoto(index=i, filename=f"{j}.jpg", job_id=j, status=Status.queued) for i, j in enumerate(jobs)]
    meta = InspectionMeta(id="i", reference=None, model="fast", tasks=[Stage.classify, Stage.assess], created_at=NOW, photos=photos)
    return inspection_public(meta, jobs, threshold=threshold)


def test_worst_severity_and_damage_counts_summed_over_assessed_photos() -> None:
    jobs = {
        "a": _job("a", "Front Breakage", 0.9, 2, assessment=_assessment("moderate", 0.95, dent=1, scratch=2, broken=0)),
        "b": _job("b", "Front Crushed", 0.8, 1, assessment=_assessment("severe", 0.55, dent=2, scratch=0, broken=1)),
        "c": _job("c", "Rear Normal", 0.95, 0),  # assess did not run: counts nothing
        "d": _job("d", "Rear Breakage", 0.9, 3, assessment=_assessment("minor", 0.99, dent=0, scratch=4, broken=0)),
    }
    summary = _inspection(jobs).summary
    # severe beats moderate and minor even at lower confidence; the finding names the photo
    assert summary.severity is not None
    assert (summary.severity.label, summary.severity.job_id, summary.severity.photo_index, summary.severity.filename) == (
        "severe",
        "b",
        1,
        "b.jpg",
    )
    assert summary.severity.confidence == 0.55
    assert summary.damage_counts == DamageCounts(dent=3, scratch=6, broken=1)
    assert summary.photos_assessed == 3


def test_severity_ties_go_to_the_more_confident_photo() -> None:
    jobs = {
        "a": _job("a", "Front Breakage", 0.9, 0, assessment=_assessment("moderate", 0.6, 0, 0, 0)),
        "b": _job("b", "Rear Breakage", 0.9, 0, assessment=_assessment("moderate", 0.8, 0, 1, 0)),
        "c": _job("c", "Rear Normal", 0.9, 0, assessment=_assessment("minor", 0.99, 0, 0, 0)),
    }
    summary = _inspection(jobs).summary
    assert (summary.severity.label, summary.severity.job_id) == ("moderate", "b")
    assert summary.damage_counts == DamageCounts(dent=0, scratch=1, broken=0)


def test_photos_the_classifier_flagged_for_review_are_listed_whatever_their_confidence() -> None:
    """Issue 9: `results.classification.review` puts a photo in `uncertain_photos`, even above the threshold."""
    jobs = {
        "a": _job("a", "Front Normal", 0.97, 0, review=True),
        "b": _job("b", "Front Breakage", 0.97, 1),
        "c": _job("c", "Rear Crushed", 0.45, 1),  # below the threshold, not flagged: listed too
    }
    summary = _inspection(jobs, threshold=0.5).summary
    assert [(u.job_id, u.photo_index, u.filename, u.confidence) for u in summary.uncertain_photos] == [
        ("a", 0, "a.jpg", 0.97),
        ("c", 2, "c.jpg", 0.45),
    ]


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
    # photo 0 had succeeded before the DELETE: the inspection stays canceled once its other jobs are too
    assert aggregate_status([Status.succeeded, Status.canceled, Status.running], canceled=True) == Status.canceled
    assert aggregate_status([Status.succeeded, Status.canceled, Status.canceled], canceled=True) == Status.canceled
    # a DELETE that lost the race to the last job finishing canceled nothing: it stays as it ended
    assert aggregate_status([Status.succeeded, Status.succeeded], canceled=True) == Status.succeeded


def test_a_photo_whose_job_expired_is_failed_not_queued_forever() -> None:
    jobs = {"a": _job("a", "Front Breakage", 0.9, 2)}
    photos = [
        InspectionPhoto(index=0, filename="a.jpg", job_id="a", status=Status.queued),
        InspectionPhoto(index=1, filename="gone.jpg", job_id="gone", status=Status.queued),
    ]
    meta = InspectionMeta(id="i", reference=None, model="fast", tasks=[Stage.classify], created_at=NOW, photos=photos)
    doc = inspection_public(meta, jobs, threshold=0.5)
    assert doc.photos[1].status == Status.failed and doc.photos[1].error.code == "job_expired"
    assert doc.status == Status.succeeded and doc.finished_at is not None
    alone = inspection_public(meta.model_copy(update={"photos": photos[1:]}), {}, threshold=0.5)
    assert alone.status == Status.failed
