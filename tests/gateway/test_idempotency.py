"""`Idempotency-Key` on submits, against a real Redis and a real HTTP server: replays, reuse with
a different body, and concurrent duplicates that must make exactly one job."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from damagelens.settings import Settings
from damagelens_gateway.app import create_app
from damagelens_gateway.idempotency import PENDING_SECONDS, PREFIX, Idempotency
from tests.support import images
from tests.support.servers import ThreadedApp

pytestmark = pytest.mark.integration


def test_same_key_same_body_replays_the_first_answer(client: TestClient, app_state) -> None:
    upload = {"image": ("car.jpg", images.jpeg(), "image/jpeg")}
    first = client.post("/v1/jobs", files=upload, data={"model": "fast"}, headers={"Idempotency-Key": "k-1"})
    again = client.post("/v1/jobs", files=upload, data={"model": "fast"}, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 202
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json() and again.headers["location"] == first.headers["location"]
    assert len(app_state.jobs.client.keys("damagelens:job:*")) == 1
    assert app_state.dispatcher.queue_lengths()["classify"] == 1

    other = client.post("/v1/jobs", files=upload, data={"model": "accurate"}, headers={"Idempotency-Key": "k-1"})
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    fresh = client.post("/v1/jobs", files=upload, data={"model": "fast"}, headers={"Idempotency-Key": "k-2"})
    assert fresh.status_code == 202 and fresh.json()["id"] != first.json()["id"]


def test_a_refused_first_request_does_not_burn_the_key(client: TestClient) -> None:
    bad = client.post("/v1/jobs", files={"image": ("t.jpg", images.truncated_jpeg(), "image/jpeg")}, headers={"Idempotency-Key": "k-3"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_image"
    good = client.post("/v1/jobs", files={"image": ("c.jpg", images.jpeg(), "image/jpeg")}, headers={"Idempotency-Key": "k-3"})
    assert good.status_code == 202 and "idempotent-replayed" not in good.headers


def test_inspections_take_the_key_too(client: TestClient, app_state) -> None:
    files = [("images", (f"{i}.jpg", images.jpeg(seed=i), "image/jpeg")) for i in range(2)]
    first = client.post("/v1/inspections", files=files, headers={"Idempotency-Key": "batch-1"})
    again = client.post("/v1/inspections", files=files, headers={"Idempotency-Key": "batch-1"})
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert len(app_state.jobs.client.keys("damagelens:inspection:*")) == 1
    assert len(app_state.jobs.client.keys("damagelens:job:*")) == 2


def test_twenty_parallel_posts_with_one_key_make_one_job(s3_settings: Settings) -> None:
    app = create_app(s3_settings)
    photo = images.jpeg(640, 480)
    with ThreadedApp(app) as server, httpx.Client(base_url=server.url, timeout=60) as http:

        def post(_: int) -> httpx.Response:
            return http.post(
                "/v1/jobs", files={"image": ("car.jpg", photo, "image/jpeg")}, data={"model": "fast"}, headers={"Idempotency-Key": "same"}
            )

        with ThreadPoolExecutor(max_workers=20) as pool:
            responses = list(pool.map(post, range(20)))
    assert [r.status_code for r in responses] == [202] * 20, [r.text for r in responses if r.status_code != 202]
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 19
    state = app.state
    assert len(state.jobs.client.keys("damagelens:job:*")) == 1
    assert state.dispatcher.queue_lengths() == {"classify": 1, "explain": 1, "detect": 1, "assess": 1}


def test_a_claim_left_by_a_dead_gateway_expires_long_before_the_answer_ttl(redis_url: str) -> None:
    """While the first request runs, its key is held only for PENDING_SECONDS (a gateway killed mid-submit
    must not block the client's retries for the whole day the answers are kept)."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    idempotency = Idempotency(client, ttl_seconds=86_400)
    seen: list[int] = []

    async def produce() -> tuple[int, str, dict[str, str]]:
        seen.append(client.ttl(f"{PREFIX}owner:k-ttl"))
        return 202, "{}", {}

    response = asyncio.run(idempotency.run("k-ttl", "owner", "hash", produce))
    assert response.status_code == 202
    assert 0 < seen[0] <= PENDING_SECONDS < 86_400
    assert client.ttl(f"{PREFIX}owner:k-ttl") > PENDING_SECONDS  # the stored answer keeps the full TTL


def test_a_slow_first_request_keeps_its_claim_past_the_pending_ttl(redis_url: str, monkeypatch) -> None:
    """A 200 MB inspection may take longer than the claim's lifetime: the claim is extended while it works,
    so the client's own retry waits for it instead of making a second inspection."""
    from damagelens_gateway import idempotency as module

    monkeypatch.setattr(module, "PENDING_SECONDS", 2)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    idempotency = Idempotency(client, ttl_seconds=86_400)
    slot = f"{PREFIX}owner:k-slow"
    seen: list[bool] = []

    async def slow() -> tuple[int, str, dict[str, str]]:
        await asyncio.sleep(3.0)  # longer than the 2 s claim
        seen.append(client.get(slot) is not None and json.loads(client.get(slot))["state"] == "pending")
        return 202, '{"id": "one"}', {}

    assert asyncio.run(idempotency.run("k-slow", "owner", "hash", slow)).status_code == 202
    assert seen == [True]
    assert json.loads(client.get(slot))["state"] == "done"
