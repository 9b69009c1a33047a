"""Redis going away and coming back: 503s that name the problem, then recovery without a restart."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from damagelens.settings import Settings
from damagelens_gateway.app import create_app
from tests.support import images
from tests.support.servers import RedisProcess

pytestmark = pytest.mark.integration


def test_submit_and_readyz_503_while_redis_is_down_then_recover(s3_settings: Settings) -> None:
    redis_proc = RedisProcess().start()
    settings = s3_settings.model_copy(update={"redis_url": redis_proc.url})
    try:
        with TestClient(create_app(settings)) as client:
            upload = {"image": ("c.jpg", images.jpeg(), "image/jpeg")}
            assert client.post("/v1/jobs", files=upload).status_code == 202
            redis_proc.stop()

            down = client.post("/v1/jobs", files=upload)
            assert down.status_code == 503
            assert down.json()["error"]["code"] == "service_unavailable"
            assert "Redis" in down.json()["error"]["message"]
            ready = client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["redis"].startswith("unavailable")
            assert client.get("/healthz").status_code == 200  # alive, just not ready
            assert "damagelens_redis_up 0.0" in client.get("/metrics").text
            keys = client.app.state.store.client.list_objects_v2(Bucket=settings.s3_bucket).get("Contents", [])
            assert len({k["Key"].split("/")[1] for k in keys}) == 1, "the failed submit left objects behind"

            redis_proc.start()
            assert client.get("/readyz").status_code == 200
            again = client.post("/v1/jobs", files=upload)
            assert again.status_code == 202
            assert client.get(again.headers["location"]).json()["status"] == "queued"
    finally:
        redis_proc.stop()
