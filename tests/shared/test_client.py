"""The Python client against a real gateway (real Redis, S3, HTTP): a submit whose answer is lost
on the network is retried with the same Idempotency-Key and makes one job; API errors are typed."""

from __future__ import annotations

import pytest

from damagelens.client import DamageLensClient, DamageLensError
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
