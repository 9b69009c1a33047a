"""The inspection report against a real Redis and S3, with stage results written the way a worker
writes them (`JobStore.set_stage`, artifacts in S3): severity and typed damage counts in the vehicle
summary, the assessment image and severity per photo, and the "Needs review" mark."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from damagelens.schemas import Stage, StageState, Status
from damagelens.storage import job_key
from tests.support import images

pytestmark = pytest.mark.integration

IMAGE = 'src="data:image/jpeg;base64,'


def _finish(app_state, job_id: str, label: str, review: bool, assessment: dict | None) -> None:
    """Every stage succeeded with a result, and its artifact stored, as the runner would leave it."""
    results = {
        Stage.classify: {
            "label": label,
            "confidence": 0.93,
            "probabilities": {label: 0.93},
            "model": "fast",
            "model_version": "9.9.1",
            "review": review,
        },
        Stage.explain: {
            "method": "gradcam",
            "target_label": label,
            "overlay_url": "/x",
            "heatmap_url": "/x",
            "model": "fast",
            "model_version": "9.9.1",
        },
        Stage.detect: {
            "detections": [],
            "total_detections": 2,
            "image_width": 320,
            "image_height": 240,
            "image_url": "/x",
            "model": "detector",
            "model_version": "1",
        },
        Stage.assess: assessment,
    }
    artifacts = {Stage.explain: "overlay.jpg", Stage.detect: "detection.jpg", Stage.assess: "assessment.jpg"}
    for stage, result in results.items():
        if result is None:
            state = StageState(status=Status.failed)
        else:
            state = StageState(status=Status.succeeded, attempts=1)
            if stage in artifacts:
                app_state.store.put(job_key(job_id, artifacts[stage]), images.jpeg(320, 240, seed=7), "image/jpeg")
        assert app_state.jobs.set_stage(job_id, stage, state, result)


def _assessment(severity: str, dent: int, scratch: int, broken: int) -> dict:
    return {
        "severity": {"label": severity, "confidence": 0.71, "probabilities": {"minor": 0.1, "moderate": 0.19, "severe": 0.71}},
        "damages": [],
        "counts": {"dent": dent, "scratch": scratch, "broken": broken},
        "image_width": 320,
        "image_height": 240,
        "image_url": "/x",
        "model": "severity+damage-types",
        "model_version": "1.2.3+4.5.6",
    }


def test_report_shows_severity_counts_assessment_images_and_review_marks(client: TestClient, app_state) -> None:
    files = [("images", (f"car-{i}.jpg", images.jpeg(320, 240, seed=i), "image/jpeg")) for i in range(2)]
    body = client.post("/v1/inspections", files=files, data={"model": "fast"}).json()
    first, second = (entry["job_id"] for entry in body["jobs"])
    _finish(app_state, first, "Front Crushed", review=True, assessment=_assessment("severe", dent=2, scratch=1, broken=1))
    _finish(app_state, second, "Rear Normal", review=False, assessment=None)  # assess failed on this photo

    summary = client.get(body["links"]["self"]).json()["summary"]
    assert summary["severity"]["label"] == "severe" and summary["severity"]["job_id"] == first
    assert summary["damage_counts"] == {"dent": 2, "scratch": 1, "broken": 1} and summary["photos_assessed"] == 1
    assert [u["job_id"] for u in summary["uncertain_photos"]] == [first]  # flagged by the model despite 93 %

    response = client.get(body["links"]["report"])
    assert response.status_code == 200
    html = response.text
    vehicle, photo1, photo2 = re.split(r"<section class='photo'>", html)
    assert "Severity (worst)</th><td>severe (71.0%)</td><td>photo 1: car-0.jpg" in vehicle
    assert "2 dent(s), 1 scratch(es), 1 broken part(s) over 1 photo(s)" in vehicle
    # photo 1: input, Grad-CAM overlay, detections and the assessment image, its severity and counts, the review mark
    assert photo1.count(IMAGE) == 4 and 'alt="assessment"' in photo1
    assert "Severity <b>severe</b> (71.0%); 2 dent(s), 1 scratch(es), 1 broken part(s)." in photo1
    assert "Needs review" in photo1 and "assessment severity+damage-types 1.2.3+4.5.6" in photo1
    # photo 2: no assess result, so no assessment image or severity, and not flagged
    assert photo2.count(IMAGE) == 3 and 'alt="assessment"' not in photo2
    assert "Severity <b>" not in photo2 and "Needs review" not in photo2


def test_report_without_any_assessment_says_so(client: TestClient, app_state) -> None:
    files = [("images", ("car.jpg", images.jpeg(320, 240, seed=3), "image/jpeg"))]
    body = client.post("/v1/inspections", files=files).json()
    _finish(app_state, body["jobs"][0]["job_id"], "Front Breakage", review=False, assessment=None)
    html = client.get(body["links"]["report"]).text
    assert "Severity (worst)</th><td colspan='2'>not assessed" in html and "Damage types" not in html
    assert html.count(IMAGE) == 3


def test_report_shows_a_phone_photo_upright(client: TestClient, app_state) -> None:
    """A portrait phone photo is stored landscape with an EXIF rotation: the report's copy must stand
    upright like the overlays drawn from it (the JPEG written into the report carries no EXIF)."""
    import base64
    import io

    from PIL import Image

    files = [("images", ("portrait.jpg", images.jpeg_exif_rotated(300, 150), "image/jpeg"))]
    body = client.post("/v1/inspections", files=files).json()
    _finish(app_state, body["jobs"][0]["job_id"], "Front Breakage", review=False, assessment=None)
    html = client.get(body["links"]["report"]).text
    first = html.split(IMAGE, 1)[1].split('"', 1)[0]
    width, height = Image.open(io.BytesIO(base64.b64decode(first))).size
    assert height > width  # 150 × 300 as a person sees it, not the stored 300 × 150


def test_deleting_a_finished_inspection_changes_nothing(client: TestClient, app_state) -> None:
    """Its webhook may have gone out already: a late DELETE must not turn `succeeded` into `canceled`."""
    files = [("images", ("car.jpg", images.jpeg(320, 240, seed=5), "image/jpeg"))]
    body = client.post("/v1/inspections", files=files).json()
    _finish(app_state, body["jobs"][0]["job_id"], "Rear Crushed", review=False, assessment=None)
    assert client.get(body["links"]["self"]).json()["status"] == "failed"  # assess failed: the one job failed
    response = client.delete(body["links"]["self"])
    assert response.status_code == 200 and response.json()["status"] == "failed"
    assert client.get(body["links"]["self"]).json()["status"] == "failed"


def test_a_photo_with_a_failed_stage_still_shows_what_the_others_found(client: TestClient, app_state) -> None:
    """The summary takes this photo's severity: its section must show it too, beside the error."""
    files = [("images", ("car.jpg", images.jpeg(320, 240, seed=9), "image/jpeg"))]
    body = client.post("/v1/inspections", files=files, data={"tasks": "classify,assess"}).json()
    job_id = body["jobs"][0]["job_id"]
    failed = StageState(status=Status.failed, attempts=1, error={"code": "internal_error", "message": "classifier crashed"})
    assert app_state.jobs.set_stage(job_id, Stage.classify, failed)
    app_state.store.put(job_key(job_id, "assessment.jpg"), images.jpeg(320, 240, seed=7), "image/jpeg")
    assert app_state.jobs.set_stage(job_id, Stage.assess, StageState(status=Status.succeeded, attempts=1), _assessment("severe", 1, 0, 2))
    doc = client.get(body["links"]["self"]).json()
    assert doc["summary"]["severity"]["label"] == "severe"
    _, photo = re.split(r"<section class='photo'>", client.get(body["links"]["report"]).text)
    assert "Not analysed" not in photo and "classifier crashed" in photo
    assert "Severity <b>severe</b>" in photo and 'alt="assessment"' in photo
