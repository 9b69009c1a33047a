"""The Python client against a real gateway (real Redis, S3, HTTP): a submit whose answer is lost
on the network is retried with the same Idempotency-Key and makes one job; API errors are typed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from damagelens.client import DamageLensClient, DamageLensError, _retry_after
from damagelens.schemas import InspectionAccepted, JobAccepted, JobPublic
from damagelens.settings import Settings
from damagelens_gateway.app import create_app
from tests.support import images
from tests.support.servers import LossyProxy, ThreadedApp

pytestmark = pytest.mark.integration


def test_lost_answer_is_retried_with_the_same_key_and_makes_one_job(s3_settings: Settings) -> None:
    app = create_app(s3_settings)
    with ThreadedApp(app) as server, LossyProxy(server.port, drop_first=1) as proxy:
        with DamageLensClient(proxy.url, backoff_seconds=0.05) as client:
            accepted = client.submit(images.jpeg(), model="fast")
        assert isinstance(accepted, JobAccepted)
        assert proxy.connections >= 2  # the first answer was lost, the retry got through
        assert app.state.jobs.client.keys("damagelens:job:*") == [f"damagelens:job:{accepted.id}"]
        assert app.state.dispatcher.queue_lengths()["classify"] == 1


def test_typed_results_and_errors(s3_settings: Settings) -> None:
    with ThreadedApp(create_app(s3_settings)) as server, DamageLensClient(server.url) as client:
        accepted = client.submit_inspection([images.jpeg(seed=1), ("b.jpg", images.jpeg(seed=2))], reference="r-1")
        assert isinstance(accepted, InspectionAccepted) and len(accepted.jobs) == 2
        doc = client.inspection(accepted.id)
        assert doc.reference == "r-1" and doc.photos[1].filename == "b.jpg"
        job = client.job(accepted.jobs[0].job_id)
        assert isinstance(job, JobPublic) and job.status.value == "queued"
        with pytest.raises(DamageLensError) as err:
            client.submit(images.truncated_jpeg())
        assert err.value.status == 422 and err.value.code == "invalid_image"
        with pytest.raises(DamageLensError) as missing:
            client.job("nope")
        assert missing.value.code == "job_not_found"
        canceled = client.cancel(job.id)
        assert canceled.status.value == "canceled"


def test_api_key_is_sent(s3_settings: Settings) -> None:
    from damagelens.apikeys import KeyStore, RateLimit

    app = create_app(s3_settings.model_copy(update={"auth": "on"}))
    _, token = KeyStore(app.state.jobs.client).create("client-test", RateLimit.parse("60/min"), 10)
    with ThreadedApp(app) as server:
        with DamageLensClient(server.url, api_key=token) as client:
            job_id = client.submit(images.jpeg()).id
            assert client.job(job_id).id == job_id
        with DamageLensClient(server.url) as anonymous, pytest.raises(DamageLensError) as err:
            anonymous.submit(images.jpeg())
        assert err.value.status == 401


def test_wait_falls_back_to_polling_when_the_stream_breaks(s3_settings: Settings) -> None:
    with ThreadedApp(create_app(s3_settings)) as server:
        with DamageLensClient(server.url) as direct:
            job_id = direct.submit(images.jpeg()).id
            direct.cancel(job_id)
        with LossyProxy(server.port, drop_first=1) as proxy, DamageLensClient(proxy.url) as client:
            done = client.wait(job_id, timeout=30, poll_seconds=0.1)  # the event stream's connection is cut
        assert done.status.value == "canceled" and proxy.connections >= 2


# The answers below come from an httpx MockTransport standing in for a proxy or load balancer in
# front of the gateway (a true external edge): it lets a test answer 409/502/503 on cue.


def _replayed_after(*first: httpx.Response):
    """A transport that gives `first` answers in order, then a 202; it records every request."""
    seen: list[httpx.Request] = []
    answers = list(first)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if answers:
            return answers.pop(0)
        return httpx.Response(202, json={"id": "j1", "status": "queued", "links": {"self": "/v1/jobs/j1", "events": "/x", "input": "/y"}})

    return httpx.MockTransport(handler), seen


def test_a_submit_is_retried_with_its_key_while_the_first_attempt_runs_or_a_proxy_lost_the_answer() -> None:
    in_progress = httpx.Response(
        409, headers={"Retry-After": "0"}, json={"error": {"code": "idempotency_in_progress", "message": "still running"}}
    )
    transport, seen = _replayed_after(in_progress, httpx.Response(502, text="<html>Bad Gateway</html>"))
    with DamageLensClient("http://gw", transport=transport, backoff_seconds=0.01) as client:
        assert client.submit(images.jpeg()).id == "j1"
    assert len(seen) == 3 and len({r.headers["Idempotency-Key"] for r in seen}) == 1


def test_a_request_without_a_key_is_not_repeated_after_a_502() -> None:
    transport, seen = _replayed_after(httpx.Response(502, text="Bad Gateway"))
    with DamageLensClient("http://gw", transport=transport, backoff_seconds=0.01) as client, pytest.raises(DamageLensError) as err:
        client.cancel("j1")
    assert err.value.status == 502 and len(seen) == 1


def test_retry_after_as_an_http_date() -> None:
    from email.utils import format_datetime

    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= _retry_after(soon, 1.0) <= 30
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1.0) == 0.0  # in the past: at once
    assert _retry_after("2", 1.0) == 2.0 and _retry_after("soon", 1.5) == 1.5 and _retry_after(None, 0.5) == 0.5


def test_wait_polls_when_the_stream_cannot_open_during_an_outage(s3_settings: Settings) -> None:
    """The proxy answers the event stream with 503 (Redis restarting); everything else reaches the real gateway."""
    calls: list[str] = []
    with ThreadedApp(create_app(s3_settings)) as server, httpx.Client(base_url=server.url) as upstream:
        with DamageLensClient(server.url) as direct:
            job_id = direct.submit(images.jpeg()).id
            direct.cancel(job_id)

        def handler(request: httpx.Request) -> httpx.Response:
            calls.append(request.url.path)
            if request.url.path.endswith("/events"):
                return httpx.Response(
                    503, headers={"Retry-After": "0"}, json={"error": {"code": "service_unavailable", "message": "Redis"}}
                )
            answer = upstream.request(request.method, request.url.path)
            return httpx.Response(answer.status_code, headers={"content-type": answer.headers["content-type"]}, content=answer.content)

        with DamageLensClient("http://gw", transport=httpx.MockTransport(handler), backoff_seconds=0.01) as client:
            done = client.wait(job_id, timeout=10, poll_seconds=0.05)
    assert done.status.value == "canceled"
    assert calls == [f"/v1/jobs/{job_id}/events", f"/v1/jobs/{job_id}"]
