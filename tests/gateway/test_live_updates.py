"""Live-update streams wake on the job's pub/sub message, not on a poll timer.

The fallback poll is set to a minute, so a stream that still reaches the final state within the
test's few seconds can only have been woken by the messages the stage writes publish.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from fastapi.testclient import TestClient

from damagelens.jobs.state import utcnow
from damagelens.schemas import Stage, StageState, Status
from damagelens.settings import Settings
from damagelens_gateway.app import create_app
from tests.support import images

pytestmark = pytest.mark.integration


def test_stream_follows_stage_writes_through_pubsub(s3_settings: Settings) -> None:
    settings = s3_settings.model_copy(update={"sse_fallback_poll_seconds": 60.0})
    with TestClient(create_app(settings)) as client:
        jobs = client.app.state.jobs
        job_id = client.post("/v1/jobs", files={"image": ("c.jpg", images.jpeg(), "image/jpeg")}, data={"tasks": "classify"}).json()["id"]
        deadline = time.monotonic() + 5
        while not client.app.state.job_events.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        events: list[dict] = []
        done = threading.Event()

        def follow() -> None:
            with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        events.append(json.loads(line[6:]))
            done.set()

        threading.Thread(target=follow, daemon=True).start()
        while not events and time.monotonic() < deadline:
            time.sleep(0.05)
        started = utcnow()
        jobs.set_stage(job_id, Stage.classify, StageState(status=Status.running, attempts=1, started_at=started, worker="w/1"))
        time.sleep(0.3)
        result = {"label": "Front Normal", "confidence": 0.9, "probabilities": {"Front Normal": 0.9}, "model": "fast", "model_version": "1"}
        done_state = StageState(status=Status.succeeded, attempts=1, started_at=started, finished_at=utcnow())
        jobs.set_stage(job_id, Stage.classify, done_state, result)
        assert done.wait(10), f"the stream did not follow the writes (events so far: {[e['status'] for e in events]})"
    assert [e["status"] for e in events] == ["queued", "running", "succeeded"]
