"""Webhooks through the whole stack: stage workers finish the job, the `notify` worker delivers a
signed event to a real receiver started here."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import WEBHOOK_SECRET, Stack
from tests.support.receiver import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _verify(headers: dict[str, str], body: bytes) -> bool:
    key = base64.b64decode(WEBHOOK_SECRET.removeprefix("whsec_"))
    mac = hmac.new(key, f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body, hashlib.sha256).digest()
    return headers["webhook-signature"] == "v1," + base64.b64encode(mac).decode()


def _wait_for(receiver: Receiver, count: int, stack: Stack, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while len(receiver.requests) < count:
        assert time.monotonic() < deadline, f"{len(receiver.requests)} of {count} webhooks arrived\n{stack.tail_logs()}"
        time.sleep(0.2)


def test_finished_job_and_inspection_call_their_webhooks(stack: Stack, real_photos: list[Path]) -> None:
    with Receiver(answers=[503]) as job_hook, Receiver() as inspection_hook, stack.client() as client:
        photo = real_photos[0]
        job = client.post(
            "/v1/jobs",
            files={"image": (photo.name, photo.read_bytes())},
            data={"model": "fast", "tasks": "classify", "webhook_url": job_hook.url, "webhook_events": "job.succeeded"},
        ).json()
        files = [("images", (p.name, p.read_bytes())) for p in real_photos[1:3]]
        inspection = client.post(
            "/v1/inspections", files=files, data={"model": "fast", "tasks": "classify", "webhook_url": inspection_hook.url}
        ).json()

        _wait_for(job_hook, 2, stack)  # 503 first, then the retry
        bodies = [json.loads(r.body) for r in job_hook.requests]
        assert [b["type"] for b in bodies] == ["job.succeeded", "job.succeeded"]
        assert bodies[1]["data"]["id"] == job["id"] and bodies[1]["data"]["results"]["classification"]["label"]
        assert all(_verify(r.headers, r.body) for r in job_hook.requests)
        recorded = stack.wait_for_job(job["id"])["webhook"]
        deadline = time.monotonic() + 30
        while len(recorded["attempts"]) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
            recorded = client.get(job["links"]["self"]).json()["webhook"]
        assert [a["status_code"] for a in recorded["attempts"]] == [503, 200] and recorded["delivered"]

        _wait_for(inspection_hook, 1, stack)
        time.sleep(1.0)
        assert len(inspection_hook.requests) == 1  # once per inspection, not per photo
        event = json.loads(inspection_hook.requests[0].body)
        assert event["type"] == "inspection.succeeded" and event["data"]["id"] == inspection["id"]
        assert all(p["status"] == "succeeded" for p in event["data"]["photos"])
        assert _verify(inspection_hook.requests[0].headers, inspection_hook.requests[0].body)
