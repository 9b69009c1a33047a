"""Submit/poll/artifact API against a real Redis and S3: validation, limits, nothing lost or half-done."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi.testclient import TestClient

from damagelens.schemas import DEFAULT_STAGES, Stage
from damagelens.settings import Settings
from damagelens_gateway.app import create_app
from tests.support import images

pytestmark = pytest.mark.integration


def _nothing_enqueued(state) -> None:
    assert sum(state.dispatcher.queue_lengths().values()) == 0
    assert state.jobs.client.keys("damagelens:job:*") == []
    state.store.ping()  # creates the bucket if the failed request never reached storage
    assert state.store.client.list_objects_v2(Bucket=state.settings.s3_bucket).get("KeyCount", 0) == 0


def test_submit_creates_job_stores_upload_and_enqueues_each_stage(client: TestClient, app_state) -> None:
    response = client.post("/v1/jobs", files={"image": ("car.jpg", images.jpeg(), "image/jpeg")}, data={"model": "fast"})
    assert response.status_code == 202
    body = response.json()
    assert response.headers["location"] == f"/v1/jobs/{body['id']}" == body["links"]["self"]
    assert body["status"] == "queued"
    # no `tasks`: the default set, one task on each of its queues (classify, explain, detect, assess)
    assert app_state.dispatcher.queue_lengths() == {s.value: int(s in DEFAULT_STAGES) for s in Stage}
    assert {"classify", "explain", "detect"} <= set(DEFAULT_STAGES)
    job = client.get(body["links"]["self"]).json()
    assert job["model"] == "fast" and job["progress"] == 0.0
    assert set(job["stages"]) == set(DEFAULT_STAGES)
    assert job["input"]["width"] == 320 and job["input"]["height"] == 240
    stored = client.get(job["input"]["url"])
    assert stored.status_code == 200 and stored.content == images.jpeg()
    assert client.get(f"/v1/jobs/{body['id']}/artifacts/overlay.jpg").json()["error"]["code"] == "artifact_not_found"


def test_file_field_alias_task_subset_and_model_alias(client: TestClient, app_state) -> None:
    response = client.post(
        "/v1/jobs", files={"file": ("car.png", images.png_rgba(), "image/png")}, data={"tasks": "detect, classify", "model": "fusion"}
    )
    assert response.status_code == 202
    job = client.get(response.headers["location"]).json()
    assert job["tasks"] == ["classify", "detect"] and job["model"] == "accurate"
    assert app_state.dispatcher.queue_lengths() == {"classify": 1, "explain": 0, "detect": 1, "assess": 0}


def test_assess_alone_is_enqueued_on_its_own_queue(client: TestClient, app_state) -> None:
    response = client.post("/v1/jobs", files={"image": ("car.jpg", images.jpeg(), "image/jpeg")}, data={"tasks": "assess"})
    assert response.status_code == 202
    job = client.get(response.headers["location"]).json()
    assert job["tasks"] == ["assess"] and set(job["stages"]) == {"assess"}
    assert app_state.dispatcher.queue_lengths() == {"classify": 0, "explain": 0, "detect": 0, "assess": 1}
    missing = client.get(f"/v1/jobs/{job['id']}/artifacts/assessment.jpg")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "artifact_not_found"


@pytest.mark.parametrize(
    ("files", "data", "status", "code"),
    [
        ({}, {}, 400, "missing_image"),
        ({"image": ("e.jpg", b"", "image/jpeg")}, {}, 400, "empty_upload"),
        ({"image": ("x.txt", b"hello, not an image", "text/plain")}, {}, 415, "unsupported_media_type"),
        ({"image": ("t.jpg", images.truncated_jpeg(), "image/jpeg")}, {}, 422, "invalid_image"),
        ({"image": ("b.png", images.pixel_bomb_png(), "image/png")}, {}, 422, "image_too_large"),
        ({"image": ("c.jpg", images.jpeg(), "image/jpeg")}, {"model": "gpt"}, 422, "unknown_model"),
        ({"image": ("c.jpg", images.jpeg(), "image/jpeg")}, {"tasks": "classify,paint"}, 422, "unknown_task"),
    ],
    ids=["missing", "empty", "not-image", "truncated", "bomb", "unknown-model", "unknown-task"],
)
def test_bad_input_is_refused_and_nothing_is_enqueued(client: TestClient, app_state, files, data, status, code) -> None:
    response = client.post("/v1/jobs", files=files or {"other": ("x", b"x")}, data=data)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    if code == "unknown_model":
        assert {"fast", "accurate"} <= set(error["valid"])
        assert "fast" in error["message"]
    _nothing_enqueued(app_state)


def test_upload_over_the_size_limit_is_413(s3_settings: Settings) -> None:
    settings = s3_settings.model_copy(update={"max_upload_bytes": 10_000})
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/jobs", files={"image": ("big.jpg", images.jpeg(800, 600), "image/jpeg")})
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "upload_too_large"
        _nothing_enqueued(client.app.state)


def test_oversized_body_is_refused_from_its_content_length(s3_settings: Settings) -> None:
    settings = s3_settings.model_copy(update={"max_upload_bytes": 1000})
    with TestClient(create_app(settings)) as client:
        body = b"x" * 200_000
        response = client.post("/v1/jobs", content=body, headers={"content-type": "multipart/form-data; boundary=b"})
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "upload_too_large"
        _nothing_enqueued(client.app.state)


def _multipart(boundary: str, payload: bytes) -> bytes:
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="c.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
    return head.encode() + payload + f"\r\n--{boundary}--\r\n".encode()


def test_a_chunked_body_without_content_length_is_cut_off_at_the_limit(s3_settings: Settings) -> None:
    """Chunked transfer declares no length: the gateway counts the body as the server hands it over and
    stops at the limit instead of spooling any size to disk. Driven through the app's ASGI interface,
    the way a server feeds a chunked request (the test client would buffer the whole body first)."""
    settings = s3_settings.model_copy(update={"max_upload_bytes": 10_000})
    app = create_app(settings)
    body = _multipart("b0undary", b"\xff" * 2_000_000)
    chunks = [body[i : i + 10_000] for i in range(0, len(body), 10_000)]
    handed: list[int] = []
    sent: list[dict] = []

    async def receive() -> dict:
        handed.append(1)
        i = len(handed) - 1
        if i < len(chunks):
            return {"type": "http.request", "body": chunks[i], "more_body": i < len(chunks) - 1}
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/jobs",
        "raw_path": b"/v1/jobs",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"multipart/form-data; boundary=b0undary"), (b"transfer-encoding", b"chunked")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    asyncio.run(app(scope, receive, send))
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert [m["status"] for m in starts] == [413]
    assert (
        json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))["error"]["code"] == "upload_too_large"
    )
    assert len(handed) <= 8 < len(chunks)  # ≈ 75 kB read of 2 MB


def test_a_chunked_upload_within_the_limit_is_accepted(client: TestClient) -> None:
    def chunked():
        body = _multipart("b0undary", images.jpeg(64, 48))
        yield from (body[i : i + 500] for i in range(0, len(body), 500))

    response = client.post("/v1/jobs", content=chunked(), headers={"content-type": "multipart/form-data; boundary=b0undary"})
    assert response.status_code == 202, response.text


def test_default_limit_is_20_mb(client: TestClient) -> None:
    assert client.get("/v1/models").json()["limits"]["max_upload_bytes"] == 20 * 1024 * 1024


def test_unknown_job_is_404(client: TestClient) -> None:
    for path in ("/v1/jobs/nope", "/v1/jobs/nope/events", "/v1/jobs/nope/artifacts/input"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "job_not_found"


def test_cancel_a_queued_job(client: TestClient) -> None:
    job_id = client.post("/v1/jobs", files={"image": ("c.jpg", images.jpeg(), "image/jpeg")}).json()["id"]
    response = client.delete(f"/v1/jobs/{job_id}")
    assert response.status_code == 200 and response.json()["status"] == "canceled"


def test_models_endpoint_lists_the_registry(client: TestClient) -> None:
    body = client.get("/v1/models").json()
    assert body["default"] == "fast"
    names = {m["name"]: m for m in body["models"]}
    assert {"fast", "accurate"} <= set(names)
    assert names["fast"]["aliases"] == ["resnet", "fast-v7"] and names["accurate"]["aliases"] == ["fusion"]
    assert names["accurate"]["members"] == ["fast-v7", "lite1-v4"]  # the ensemble names its members
    assert names["accurate-v11"]["members"] == ["fast-v7", "lite1-v3"]
    assert names["accurate-v10"]["members"] == ["fast-v6", "lite1-v3"] and names["accurate-v9"]["members"] == ["fast-v6", "lite1-v2"]
    assert names["accurate-v8"]["members"] == ["fast-v4", "lite1-v2"]
    assert names["accurate-v5"]["members"] == ["fast-v4", "accurate-v3"]  # the previous ensembles stay loadable
    assert names["accurate-v4"]["members"] == ["fast-v3", "accurate-v3"]
    assert all(isinstance(m["trained"], bool) for m in body["models"])


def test_models_endpoint_exposes_calibration_and_review_threshold(client: TestClient) -> None:
    from damagelens.registry import load_registry
    from damagelens.settings import get_settings

    registry = load_registry(get_settings().registry_path)
    body = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    for name in ("fast", "accurate"):
        entry = registry.get(name)
        assert body[name]["temperature"] == entry.temperature > 0
        assert body[name]["review_threshold"] == entry.review_threshold
        assert entry.review_threshold is not None and 0 < entry.review_threshold < 1


def test_health_ready_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"redis": "ok", "storage": "ok"}
    client.post("/v1/jobs", files={"image": ("c.jpg", images.jpeg(), "image/jpeg")})
    text = client.get("/metrics").text
    assert 'damagelens_queue_depth{queue="classify"} 1.0' in text
    assert "damagelens_jobs_submitted_total 1.0" in text
    assert 'damagelens_http_requests_total{method="POST",route="/v1/jobs",status="202"} 1.0' in text
    assert 'damagelens_stage_seconds_count{stage="classify"} 0.0' in text  # no stage has run: no worker here


def test_readiness_checks_a_broker_of_its_own(s3_settings: Settings) -> None:
    """With DAMAGELENS_BROKER_URL set apart from the job store, every submit needs that broker: /readyz must say so."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{probe.getsockname()[1]}/0"  # nothing listens once closed
    live = s3_settings.redis_url.rsplit("/", 1)[0] + "/3"  # the same Redis server, another database
    with TestClient(create_app(s3_settings.model_copy(update={"broker_url": live}))) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["broker"] == "ok"
    with TestClient(create_app(s3_settings.model_copy(update={"broker_url": dead}))) as client:
        down = client.get("/readyz")
        assert down.status_code == 503 and down.json()["checks"]["broker"].startswith("unavailable")
        assert down.json()["checks"]["redis"] == "ok"


def test_made_up_http_methods_share_one_metrics_label(client: TestClient) -> None:
    """The HTTP parser accepts any token as a method: each must not become a new series (memory, Prometheus)."""
    for method in ("XYZ1", "XYZ2", "XYZ3"):
        client.request(method, "/v1/jobs/x")
    text = client.get("/metrics").text
    assert "XYZ" not in text
    assert 'damagelens_http_requests_total{method="OTHER",route="/v1/jobs/{job_id}",status="405"} 3.0' in text


def test_sse_stream_sends_the_current_state(client: TestClient) -> None:
    job_id = client.post("/v1/jobs", files={"image": ("c.jpg", images.jpeg(), "image/jpeg")}).json()["id"]
    client.delete(f"/v1/jobs/{job_id}")  # terminal, so the stream ends after one event
    with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    assert text.startswith("event: job\n")
    assert '"status":"canceled"' in text
