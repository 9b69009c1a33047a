"""Webhooks end to end without models: a real gateway app, a real `notify` Celery worker process,
real Redis and S3, and a real HTTP receiver started here. A canceled job is a finished job, so
no stage worker is needed to trigger the event."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from damagelens.settings import Settings
from damagelens.webhooks.signing import new_secret
from damagelens_gateway.app import create_app
from tests.support import images
from tests.support.receiver import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
SECRET = new_secret()


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Independent Standard Webhooks check (spec text, not our signing module)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body, hashlib.sha256).digest()
    return headers["webhook-signature"] == "v1," + base64.b64encode(mac).decode()


@pytest.fixture
def hooked(s3_settings: Settings, tmp_path: Path) -> Iterator[tuple[Settings, Path]]:
    """Webhook settings for gateway and worker alike, and a running `damagelens worker --queue notify`."""
    settings = s3_settings.model_copy(
        update={
            "webhook_secret": SECRET,
            "webhook_allow_http": True,
            "webhook_allowlist": ["127.0.0.1/32"],
            "webhook_retry_base_seconds": 0.3,
            "webhook_max_attempts": 4,
        }
    )
    env = {
        **os.environ,
        "DAMAGELENS_REDIS_URL": settings.redis_url,
        "DAMAGELENS_STORAGE_BACKEND": "s3",
        "DAMAGELENS_S3_ENDPOINT_URL": settings.s3_endpoint_url,
        "DAMAGELENS_S3_ACCESS_KEY": settings.s3_access_key,
        "DAMAGELENS_S3_SECRET_KEY": settings.s3_secret_key,
        "DAMAGELENS_S3_BUCKET": settings.s3_bucket,
        "DAMAGELENS_WEBHOOK_SECRET": SECRET,
        "DAMAGELENS_WEBHOOK_ALLOW_HTTP": "true",
        "DAMAGELENS_WEBHOOK_ALLOWLIST": '["127.0.0.1/32"]',
        "DAMAGELENS_WEBHOOK_RETRY_BASE_SECONDS": "0.3",
        "DAMAGELENS_WEBHOOK_MAX_ATTEMPTS": "4",
    }
    log = tmp_path / "notify.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "damagelens.cli", "worker", "--queue", "notify"],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        cwd=REPO,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while '"worker warm"' not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "notify worker did not start\n" + log.read_text()
            time.sleep(0.3)
        yield settings, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait(predicate, what: str, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n" + log.read_text()[-3000:]
        time.sleep(0.1)


def test_job_webhook_is_signed_and_retried_after_two_500s(hooked) -> None:
    settings, log = hooked
    with Receiver(answers=[500, 500, 200]) as receiver, TestClient(create_app(settings)) as client:
        job = client.post("/v1/jobs", files={"image": ("c.jpg", images.jpeg(), "image/jpeg")}, data={"webhook_url": receiver.url}).json()
        client.delete(job["links"]["self"])  # canceled: a terminal event
        _wait(lambda: len(receiver.requests) >= 3, "three deliveries", log)
        time.sleep(1.0)  # a fourth (wrong) delivery would come within 2.4 s of back-off
        assert len(receiver.requests) == 3
        ids = {r.headers["webhook-id"] for r in receiver.requests}
        assert len(ids) == 1  # one message, retried: receivers de-duplicate on it
        for request in receiver.requests:
            assert verify(SECRET, request.headers, request.body)
            payload = json.loads(request.body)
            assert payload["type"] == "job.canceled" and payload["data"]["id"] == job["id"]
        _wait(lambda: len(client.get(job["links"]["self"]).json()["webhook"]["attempts"]) == 3, "attempts recorded", log)
        hook = client.get(job["links"]["self"]).json()["webhook"]
        assert hook["delivered"] is True and hook["url"] == receiver.url
        assert [a["status_code"] for a in hook["attempts"]] == [500, 500, 200]
        assert [a["attempt"] for a in hook["attempts"]] == [1, 2, 3]


def test_inspection_webhook_fires_once_when_the_inspection_is_done(hooked) -> None:
    settings, log = hooked
    with Receiver() as receiver, TestClient(create_app(settings)) as client:
        files = [("images", (f"{i}.jpg", images.jpeg(seed=i), "image/jpeg")) for i in range(3)]
        accepted = client.post("/v1/inspections", files=files, data={"webhook_url": receiver.url}).json()
        client.delete(accepted["links"]["self"])
        _wait(lambda: len(receiver.requests) >= 1, "the inspection event", log)
        time.sleep(1.0)
        assert len(receiver.requests) == 1
        payload = json.loads(receiver.requests[0].body)
        assert payload["type"] == "inspection.canceled" and payload["data"]["id"] == accepted["id"]
        assert len(payload["data"]["photos"]) == 3 and verify(SECRET, receiver.requests[0].headers, receiver.requests[0].body)


def test_webhook_to_a_private_address_is_refused_and_not_retried(hooked) -> None:
    settings, log = hooked
    with TestClient(create_app(settings)) as client:
        job = client.post(
            "/v1/jobs", files={"image": ("c.jpg", images.jpeg(), "image/jpeg")}, data={"webhook_url": "http://10.0.0.1/hook"}
        ).json()
        client.delete(job["links"]["self"])
        _wait(lambda: client.get(job["links"]["self"]).json()["webhook"]["attempts"], "the refused attempt", log)
        time.sleep(1.0)
        attempts = client.get(job["links"]["self"]).json()["webhook"]["attempts"]
        assert len(attempts) == 1 and attempts[0]["refused"] is True and "private" in attempts[0]["error"]


def test_submit_refuses_a_webhook_that_can_never_be_sent(s3_settings: Settings) -> None:
    upload = {"image": ("c.jpg", images.jpeg(), "image/jpeg")}
    with TestClient(create_app(s3_settings)) as client:  # no secret, https only
        no_secret = client.post("/v1/jobs", files=upload, data={"webhook_url": "https://hooks.example.test/x"})
        assert no_secret.status_code == 422 and no_secret.json()["error"]["code"] == "webhook_refused"
    with TestClient(create_app(s3_settings.model_copy(update={"webhook_secret": SECRET}))) as client:
        plain = client.post("/v1/jobs", files=upload, data={"webhook_url": "http://hooks.example.test/x"})
        assert plain.status_code == 422 and "https" in plain.json()["error"]["message"]
        bad_event = client.post("/v1/jobs", files=upload, data={"webhook_url": "https://h.example.test/", "webhook_events": "job.done"})
        assert bad_event.status_code == 422 and bad_event.json()["error"]["code"] == "unknown_webhook_event"
        assert client.app.state.jobs.client.keys("damagelens:job:*") == []


def test_retry_delays_double_but_stay_under_the_brokers_redelivery() -> None:
    """A retry held past the visibility timeout would be handed to a second worker and POSTed twice."""
    from damagelens_worker.notify import retry_delay

    delays = [retry_delay(n, 30.0, 600) for n in range(1, 8)]
    assert delays == [30.0, 60.0, 120.0, 240.0, 300.0, 300.0, 300.0]
    assert sum(delays) == 1350.0  # about 23 min from the first attempt to the eighth


def test_a_webhook_is_retried_not_dropped_while_the_job_store_is_away(monkeypatch) -> None:
    """Redis refuses connections (nothing listens on the port): the task retries instead of failing
    (which would drop the event), and gives up after the usual number of attempts. Run eagerly: Celery
    re-runs a retried eager task at once, so the whole chain runs inside this call."""
    import socket

    from damagelens_worker import notify, runner

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: connections to it are refused
    monkeypatch.setenv("DAMAGELENS_REDIS_URL", f"redis://127.0.0.1:{port}/0")
    monkeypatch.setenv("DAMAGELENS_WEBHOOK_MAX_ATTEMPTS", "3")
    runner.job_store.cache_clear()
    try:
        payload = {"kind": "job", "id": "j-away", "event": "job.succeeded", "webhook_id": "msg_j-away_job.succeeded"}
        result = notify.notify_task.apply(args=[payload]).get()
    finally:
        runner.job_store.cache_clear()
    assert result == {"delivered": False, "attempts": 3}
