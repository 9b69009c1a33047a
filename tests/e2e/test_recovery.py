"""Whole worker processes killed or stopped mid-task, with real processes, Redis, S3 and the reaper.

- SIGKILL to a worker's whole process group (main process and pool child, as an OOM kill or a
  lost node): the reaper re-enqueues the stage once the heartbeat expires and the second worker
  on the queue finishes it within 30 s; the broker's own redelivery, when it comes, is a no-op.
- SIGTERM (a rolling update): the running task finishes, no new one is taken, and the tasks the
  worker held for later go back to the queue.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

from damagelens.schemas import Stage, StageTask
from damagelens.tasks import QUEUES, TASK_NAMES
from tests.support import images
from tests.support.stack import ChaosStack, chaos_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
RECOVERY_LIMIT_SECONDS = 30.0
BIG = images.jpeg(4000, 3000, seed=11)  # decode + CAM + overlay keep a child busy for a while


def _submit(stack: ChaosStack, data: bytes = BIG, tasks: str = "explain") -> str:
    with stack.client() as client:
        response = client.post("/v1/jobs", files={"image": ("big.jpg", data, "image/jpeg")}, data={"tasks": tasks, "model": "fast"})
    assert response.status_code == 202, response.text
    return response.json()["id"]


def _holder(job: dict) -> str:
    return job["stages"]["explain"]["worker"] or ""


def _producer(stack: ChaosStack) -> Celery:
    app = Celery(broker=stack.env["DAMAGELENS_REDIS_URL"])
    app.conf.task_serializer = "json"
    return app


@pytest.fixture(scope="module")
def two_explain_workers(tmp_path_factory) -> Iterator[ChaosStack]:
    with chaos_stack(tmp_path_factory.mktemp("recovery")) as stack:
        stack.start_gateway()
        stack.start_reaper()
        for name in ("explain-a", "explain-b"):
            stack.start_worker(name, "explain")
        stack.wait_gateway()
        for name in ("explain-a", "explain-b"):
            stack.wait_warm(name)
        yield stack


def test_sigkilled_worker_stage_is_finished_by_another_within_30s(two_explain_workers: ChaosStack) -> None:
    stack = two_explain_workers
    recoveries = []
    for _ in range(2):
        job_id = _submit(stack)
        running = stack.wait_until(job_id, lambda j: j["stages"]["explain"]["status"] == "running" and _holder(j))
        victim = next(name for name, p in stack.procs.items() if p.alive and _holder(running).endswith(f"/{p.popen.pid}"))
        killed_at = time.monotonic()
        stack.kill(victim)
        job = stack.wait_for_job(job_id, timeout=120, poll=0.1)
        recoveries.append(time.monotonic() - killed_at)
        explain = job["stages"]["explain"]
        assert job["status"] == "succeeded", stack.tail_logs()
        assert explain["attempts"] == 2, explain  # the killed delivery stays counted
        assert explain["worker"] != _holder(running)
        assert recoveries[-1] < RECOVERY_LIMIT_SECONDS, f"recovered after {recoveries[-1]:.1f}s\n{stack.tail_logs()}"

        # The broker's late redelivery of the killed worker's message changes nothing.
        before = stack.job(job_id)
        payload = StageTask(job_id=job_id, stage=Stage.explain, model="fast", input_key=f"jobs/{job_id}/input.jpg")
        _producer(stack).send_task(TASK_NAMES[Stage.explain], args=[payload.model_dump(mode="json")], queue=QUEUES[Stage.explain])
        time.sleep(3)
        assert stack.job(job_id)["stages"] == before["stages"]

        stack.start(victim)  # the supervisor brings the worker back
        stack.wait_warm(victim)
    metrics = _metric_lines(stack, "damagelens_stages_reaped_total")
    assert any('stage="explain"' in line and float(line.split()[-1]) >= 2 for line in metrics), metrics
    print(f"\nSIGKILL → stage finished by the other worker: p50 {statistics.median(recoveries):.1f}s, max {max(recoveries):.1f}s")


def _metric_lines(stack: ChaosStack, name: str) -> list[str]:
    with stack.client() as client:
        return [line for line in client.get("/metrics").text.splitlines() if line.startswith(name)]


@pytest.fixture
def one_explain_worker(tmp_path: Path) -> Iterator[ChaosStack]:
    with chaos_stack(tmp_path) as stack:
        stack.start_gateway()
        stack.start_worker("explain-1", "explain")
        stack.wait_gateway()
        stack.wait_warm("explain-1")
        yield stack


def test_sigterm_finishes_the_running_task_and_hands_back_the_rest(one_explain_worker: ChaosStack) -> None:
    stack = one_explain_worker
    broker = redis.Redis.from_url(stack.env["DAMAGELENS_REDIS_URL"], decode_responses=True)
    # A task the worker holds for later, as it holds a retry's countdown: reserved and unacked.
    held = _submit(stack, tasks="classify")  # no classify worker here; only the explain task sent below runs
    input_key = json.loads(broker.hget(f"damagelens:job:{held}", "meta"))["input_key"]
    payload = StageTask(job_id=held, stage=Stage.explain, model="fast", input_key=input_key)
    _producer(stack).send_task(TASK_NAMES[Stage.explain], args=[payload.model_dump(mode="json")], queue=QUEUES[Stage.explain], countdown=60)
    deadline = time.monotonic() + 20
    while broker.hlen("unacked") < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert broker.hlen("unacked") == 1, "the worker did not reserve the delayed task"

    stack.s3_proxy.response_delay = 0.2  # a slow object store keeps the running task busy for seconds
    first = _submit(stack)
    stack.wait_until(first, lambda j: j["stages"]["explain"]["status"] == "running")
    waiting = _submit(stack)  # sits in the queue: the busy worker has no free slot
    assert broker.hlen("unacked") == 2  # running + held

    started = time.monotonic()
    exit_code = stack.terminate("explain-1", timeout=120)
    print(f"\nwarm shutdown took {time.monotonic() - started:.1f}s")
    stack.s3_proxy.response_delay = 0.0
    assert exit_code == 0, stack.tail_logs()
    finished = stack.job(first)
    assert finished["status"] == "succeeded" and finished["stages"]["explain"]["attempts"] == 1, "the running task was not finished"
    assert stack.job(waiting)["stages"]["explain"]["status"] == "queued", "a stopping worker took a new task"
    assert broker.hlen("unacked") == 0, "a held task stayed unacked (it would wait for the visibility timeout)"
    assert broker.llen(QUEUES[Stage.explain]) == 2, "the waiting and the held task are both back on the queue"

    stack.start("explain-1")
    stack.wait_warm("explain-1")
    job = stack.wait_for_job(waiting, timeout=120)
    assert job["status"] == "succeeded" and job["stages"]["explain"]["attempts"] == 1
