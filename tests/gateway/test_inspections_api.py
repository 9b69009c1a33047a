"""`/v1/inspections` against a real Redis and S3 (no workers: jobs stay queued): batch rules,
a bad photo failing alone, nothing stored for a refused batch, cancel of every job."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from damagelens.settings import Settings
from damagelens_gateway.app import create_app
from tests.support import images

pytestmark = pytest.mark.integration


def _photos(n: int) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("images", (f"car-{i}.jpg", images.jpeg(320, 240, seed=i), "image/jpeg")) for i in range(n)]


def _nothing_stored(state) -> None:
    assert sum(state.dispatcher.queue_lengths().values()) == 0
    assert state.jobs.client.keys("damagelens:job:*") == []
    assert state.jobs.client.keys("damagelens:inspection:*") == []
    state.store.ping()
    assert state.store.client.list_objects_v2(Bucket=state.settings.s3_bucket).get("KeyCount", 0) == 0


def test_inspection_makes_one_job_per_photo_and_a_bad_photo_fails_alone(client: TestClient, app_state) -> None:
    files = _photos(3)
    files.insert(2, ("images", ("broken.jpg", images.truncated_jpeg(), "image/jpeg")))
    response = client.post("/v1/inspections", files=files, data={"model": "fast", "reference": "claim-42"})
    assert response.status_code == 202, response.text
    body = response.json()
    assert response.headers["location"] == body["links"]["self"] == f"/v1/inspections/{body['id']}"
    assert body["reference"] == "claim-42" and body["status"] == "queued"
    assert [p["index"] for p in body["jobs"]] == [0, 1, 2, 3]
    bad = body["jobs"][2]
    assert bad["filename"] == "broken.jpg" and bad["job_id"] is None and bad["status"] == "failed"
    assert bad["error"]["code"] == "invalid_image" and bad["error"]["message"]
    assert all(p["job_id"] and p["status"] == "queued" for i, p in enumerate(body["jobs"]) if i != 2)
    assert app_state.dispatcher.queue_lengths() == {"classify": 3, "explain": 3, "detect": 3, "assess": 3}

    doc = client.get(body["links"]["self"]).json()
    assert doc["status"] == "queued" and doc["model"] == "fast" and doc["reference"] == "claim-42"
    assert doc["progress"] == pytest.approx(0.25)  # the refused photo is done, three are waiting
    assert [p["filename"] for p in doc["photos"]] == ["car-0.jpg", "car-1.jpg", "broken.jpg", "car-2.jpg"]
    assert doc["photos"][0]["job"]["id"] == body["jobs"][0]["job_id"]
    assert doc["photos"][2]["job"] is None and doc["photos"][2]["error"]["code"] == "invalid_image"
    assert doc["summary"]["photos_failed"] == 1 and doc["summary"]["front"] is None
    job = client.get(f"/v1/jobs/{body['jobs'][0]['job_id']}").json()
    assert job["input"]["filename"] == "car-0.jpg"


@pytest.mark.parametrize(
    ("update", "count", "status", "code"),
    [
        ({}, 0, 400, "empty_inspection"),
        ({"inspection_max_photos": 3}, 4, 422, "too_many_photos"),
        ({"inspection_max_bytes": 150_000}, 8, 413, "upload_too_large"),
    ],
    ids=["empty", "too-many", "too-big"],
)
def test_refused_batch_stores_nothing(s3_settings: Settings, update, count, status, code) -> None:
    with TestClient(create_app(s3_settings.model_copy(update=update))) as client:
        files = _photos(count) or {"other": ("x", b"x")}
        response = client.post("/v1/inspections", files=files)
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code
        _nothing_stored(client.app.state)


def test_batch_of_only_bad_photos_or_unknown_model_stores_nothing(client: TestClient, app_state) -> None:
    bad = [("images", ("a.txt", b"not an image", "text/plain")), ("images", ("b.jpg", images.truncated_jpeg(), "image/jpeg"))]
    response = client.post("/v1/inspections", files=bad)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "no_valid_photos"
    assert [(p["index"], p["filename"], p["error"]["code"]) for p in error["photos"]] == [
        (0, "a.txt", "unsupported_media_type"),
        (1, "b.jpg", "invalid_image"),
    ]
    unknown = client.post("/v1/inspections", files=_photos(2), data={"model": "gpt"})
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_model"
    _nothing_stored(app_state)


def test_cancel_cancels_every_job_and_events_end(client: TestClient) -> None:
    body = client.post("/v1/inspections", files=_photos(3)).json()
    response = client.delete(body["links"]["self"])
    assert response.status_code == 200
    doc = response.json()
    assert doc["status"] == "canceled"
    for entry in body["jobs"]:
        assert client.get(f"/v1/jobs/{entry['job_id']}").json()["status"] == "canceled"
    with client.stream("GET", body["links"]["events"]) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        text = "".join(stream.iter_text())
    assert text.startswith("event: inspection\n") and '"status":"canceled"' in text


def test_unknown_inspection_is_404(client: TestClient) -> None:
    for path in ("/v1/inspections/nope", "/v1/inspections/nope/events", "/v1/inspections/nope/report"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "inspection_not_found"


def test_openapi_describes_the_new_endpoints_headers_and_errors(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    for path in ("/v1/inspections", "/v1/inspections/{inspection_id}", "/v1/inspections/{inspection_id}/events"):
        assert path in doc["paths"]
    assert "/v1/inspections/{inspection_id}/report" in doc["paths"]
    submit = doc["paths"]["/v1/inspections"]["post"]
    assert {"202", "401", "409", "413", "422", "429", "503"} <= set(submit["responses"])
    assert "Retry-After" in submit["responses"]["429"]["headers"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in doc["paths"]["/v1/jobs"]["post"]["parameters"])
    assert doc["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    assert "404" in doc["paths"]["/v1/jobs/{job_id}"]["get"]["responses"]
