"""API keys, ownership, per-key rate and queue caps, and queue back-pressure (real Redis and S3)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from damagelens.apikeys import KeyStore, RateLimit
from damagelens.cli import app as cli_app
from damagelens.settings import Settings
from damagelens_gateway.app import create_app
from tests.support import images

pytestmark = pytest.mark.integration


@pytest.fixture
def secured(s3_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(s3_settings.model_copy(update={"auth": "on"}))) as client:
        yield client


def _key(client: TestClient, name: str, rate: str = "600/min", max_queued: int = 200) -> dict[str, str]:
    _, token = KeyStore(client.app.state.jobs.client).create(name, RateLimit.parse(rate), max_queued)
    return {"Authorization": f"Bearer {token}"}


def _submit(client: TestClient, headers: dict[str, str]):
    return client.post("/v1/jobs", files={"image": ("c.jpg", images.jpeg(), "image/jpeg")}, headers=headers)


def test_without_a_key_everything_but_health_and_models_is_401(secured: TestClient) -> None:
    for method, path in (("POST", "/v1/jobs"), ("GET", "/v1/jobs/x"), ("POST", "/v1/inspections"), ("POST", "/predict/resnet")):
        response = secured.request(method, path, files={"image": ("c.jpg", images.jpeg(), "image/jpeg")} if method == "POST" else None)
        assert response.status_code == 401, (path, response.text)
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")
    bad = _submit(secured, {"Authorization": "Bearer dl_not-a-key"})
    assert bad.status_code == 401 and "unknown or revoked" in bad.json()["error"]["message"]
    assert secured.get("/healthz").status_code == 200 and secured.get("/v1/models").status_code == 200
    assert secured.app.state.jobs.client.keys("damagelens:job:*") == []


def test_another_keys_job_and_inspection_are_404(secured: TestClient) -> None:
    alice, bob = _key(secured, "alice"), _key(secured, "bob")
    job = _submit(secured, alice).json()
    assert secured.get(job["links"]["self"], headers=alice).status_code == 200
    for path in (job["links"]["self"], job["links"]["events"], job["links"]["input"]):
        response = secured.get(path, headers=bob)
        assert response.status_code == 404 and response.json()["error"]["code"] == "job_not_found"
    assert secured.delete(job["links"]["self"], headers=bob).status_code == 404
    assert secured.get(job["links"]["self"], headers=alice).json()["status"] == "queued"

    files = [("images", ("a.jpg", images.jpeg(), "image/jpeg"))]
    inspection = secured.post("/v1/inspections", files=files, headers=alice).json()
    assert secured.get(inspection["links"]["self"], headers=alice).status_code == 200
    for path in (inspection["links"]["self"], inspection["links"]["report"]):
        assert secured.get(path, headers=bob).status_code == 404
    assert secured.get(f"/v1/jobs/{inspection['jobs'][0]['job_id']}", headers=bob).status_code == 404


def test_the_ui_cookie_works_for_reads_only(secured: TestClient) -> None:
    headers = _key(secured, "browser")
    token = headers["Authorization"].removeprefix("Bearer ")
    job = _submit(secured, headers).json()
    secured.cookies.set("damagelens_api_key", token)
    try:
        assert secured.get(job["links"]["input"]).status_code == 200  # what an <img> does
        assert secured.delete(job["links"]["self"]).status_code == 401  # never state changes
        assert _submit(secured, {}).status_code == 401
    finally:
        secured.cookies.clear()


def test_revoked_key_is_refused(secured: TestClient) -> None:
    headers = _key(secured, "temp")
    assert _submit(secured, headers).status_code == 202
    assert [k.name for k in KeyStore(secured.app.state.jobs.client).revoke("temp")] == ["temp"]
    assert _submit(secured, headers).status_code == 401


def test_burst_over_the_rate_gets_429_with_retry_after(secured: TestClient) -> None:
    headers = _key(secured, "slow", rate="3/min")
    codes = [_submit(secured, headers) for _ in range(5)]
    assert [r.status_code for r in codes] == [202, 202, 202, 429, 429]
    limited = codes[3]
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["retry-after"]) <= 20  # one token refills in 20 s
    assert len(secured.app.state.jobs.client.keys("damagelens:job:*")) == 3
    assert _submit(secured, _key(secured, "other")).status_code == 202  # buckets are per key


def test_a_retried_submit_replays_even_when_the_bucket_is_empty(secured: TestClient) -> None:
    """A client that timed out and retries with its Idempotency-Key gets its job back, not 429, and spends no token."""
    headers = _key(secured, "retrying", rate="2/min")
    first = _submit(secured, {**headers, "Idempotency-Key": "claim-7"})
    assert _submit(secured, headers).status_code == 202  # the bucket is now empty
    assert _submit(secured, headers).status_code == 429
    retried = _submit(secured, {**headers, "Idempotency-Key": "claim-7"})
    assert retried.status_code == 202 and retried.headers["idempotent-replayed"] == "true"
    assert retried.json()["id"] == first.json()["id"]
    assert len(secured.app.state.jobs.client.keys("damagelens:job:*")) == 2


def test_cap_on_unfinished_jobs_per_key(secured: TestClient) -> None:
    headers = _key(secured, "capped", max_queued=2)
    assert [_submit(secured, headers).status_code for _ in range(2)] == [202, 202]
    refused = _submit(secured, headers)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "too_many_queued"
    assert refused.headers["retry-after"]
    batch = secured.post("/v1/inspections", files=[("images", ("a.jpg", images.jpeg(), "image/jpeg"))], headers=headers)
    assert batch.status_code == 429
    job_ids = [k.removeprefix("damagelens:job:") for k in secured.app.state.jobs.client.keys("damagelens:job:*")]
    secured.delete(f"/v1/jobs/{job_ids[0]}", headers=headers)  # a finished job frees its slot
    assert _submit(secured, headers).status_code == 202


def test_queue_deeper_than_the_setting_gives_503(s3_settings: Settings) -> None:
    with TestClient(create_app(s3_settings.model_copy(update={"max_queue_depth": 1}))) as client:
        assert [_submit(client, {}).status_code for _ in range(2)] == [202, 202]
        full = _submit(client, {})
        assert full.status_code == 503
        assert full.json()["error"]["code"] == "queue_full" and full.headers["retry-after"] == "10"
        detect_only = client.post("/v1/jobs", files={"image": ("c.jpg", images.jpeg(), "image/jpeg")}, data={"tasks": "detect"})
        assert detect_only.status_code == 503  # the detect queue is as deep
        assert len(client.app.state.jobs.client.keys("damagelens:job:*")) == 2


def test_keys_cli_create_list_revoke(s3_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAMAGELENS_REDIS_URL", s3_settings.redis_url)
    runner = CliRunner()
    created = runner.invoke(cli_app, ["keys", "create", "claims-team", "--rate", "10/s", "--max-queued", "5"])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("dl_")
    listed = runner.invoke(cli_app, ["keys", "list"])
    assert "claims-team" in listed.stdout and "10/s" in listed.stdout and "active" in listed.stdout
    assert token not in listed.stdout
    import redis

    raw = redis.Redis.from_url(s3_settings.redis_url, decode_responses=True)
    assert not any(token in (raw.get(k) or "") or token in k for k in raw.keys("damagelens:apikey*") if raw.type(k) == "string")
    assert runner.invoke(cli_app, ["keys", "revoke", "claims-team"]).exit_code == 0
    assert "revoked" in runner.invoke(cli_app, ["keys", "list"]).stdout
    assert runner.invoke(cli_app, ["keys", "create", "x", "--rate", "fast"]).exit_code != 0


def test_limits_hold_across_two_gateways_under_parallel_requests(s3_settings: Settings) -> None:
    """Two gateway processes' worth of apps on one Redis: the Lua bucket and cap are shared and atomic."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from tests.support.servers import ThreadedApp

    settings = s3_settings.model_copy(update={"auth": "on"})
    first, second = create_app(settings), create_app(settings)
    keys = KeyStore(first.state.jobs.client)
    _, rate_token = keys.create("burst", RateLimit.parse("5/h"), 100)  # no refill during the test
    _, cap_token = keys.create("capped", RateLimit.parse("100/min"), 4)
    photo = images.jpeg()
    with ThreadedApp(first) as a, ThreadedApp(second) as b, httpx.Client(timeout=60) as http:

        def post(args: tuple[int, str]) -> int:
            i, token = args
            url = (a.url if i % 2 else b.url) + "/v1/jobs"
            return http.post(url, files={"image": ("c.jpg", photo, "image/jpeg")}, headers={"Authorization": f"Bearer {token}"}).status_code

        with ThreadPoolExecutor(max_workers=12) as pool:
            rate_codes = list(pool.map(post, [(i, rate_token) for i in range(12)]))
            cap_codes = list(pool.map(post, [(i, cap_token) for i in range(12)]))
    assert sorted(rate_codes) == [202] * 5 + [429] * 7
    assert sorted(cap_codes) == [202] * 4 + [429] * 8
    assert len(first.state.jobs.client.keys("damagelens:job:*")) == 9
