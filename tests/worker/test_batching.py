"""Micro-batching (`DAMAGELENS_BATCH_SIZE` > 1): real Redis, real Celery worker processes, real photos.

The first tests drive `runner.run_stage_batch` in this process against a real Redis and a local
store, with a double of the batch task's retry publishing (the framework edge); the rest start
real `damagelens worker` processes with batching on and check what clients would see.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
from celery import Celery
from PIL import Image

from damagelens.imaging import load_upright_rgb
from damagelens.jobs import JobMeta, JobStore
from damagelens.jobs.liveness import live_workers, stage_ref
from damagelens.jobs.state import utcnow
from damagelens.schemas import Stage, StageState, StageTask, Status
from damagelens.settings import Settings, get_settings
from damagelens.storage import create_store, job_key
from damagelens.tasks import TASK_NAMES
from damagelens_worker import runner
from damagelens_worker.celery_app import prefetch_multiplier
from tests.support import images

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


# ---- run_stage_batch in this process ------------------------------------------------------------


class BatchTaskDouble:
    """Only what run_stage_batch asks of `StageBatches`: max_retries and re-publishing one request."""

    def __init__(self, max_retries: int = 3):
        self.max_retries = max_retries
        self.republished: list[tuple[str, float]] = []

    def retry_request(self, request, payload: StageTask, countdown: float) -> None:
        self.republished.append((payload.job_id, countdown))


def _request(payload: dict, retries: int = 0) -> SimpleNamespace:
    return SimpleNamespace(id=f"task-{payload['job_id']}", args=(payload,), kwargs={}, request_dict={"retries": retries})


def _job(job_id: str, data: bytes, stage: Stage = Stage.classify) -> dict:
    key = job_key(job_id, "input.jpg")
    runner.object_store().put(key, data)
    runner.job_store().create(_meta(job_id, key, stage))
    return StageTask(job_id=job_id, stage=stage, model="fast", input_key=key).model_dump(mode="json")


def _meta(job_id: str, key: str, stage: Stage) -> JobMeta:
    return JobMeta(
        id=job_id,
        model="fast",
        tasks=[stage],
        created_at=utcnow(),
        input_key=key,
        filename="c.jpg",
        content_type="image/jpeg",
        width=1,
        height=1,
    )


def _sizes(items: list[tuple[StageTask, Image.Image]]) -> list[runner.StageOutput]:
    return [runner.StageOutput(result={"size": list(image.size), "n": len(items)}) for _, image in items]


def _one(payload: StageTask, image: Image.Image) -> runner.StageOutput:
    return runner.StageOutput(result={"size": list(image.size), "n": 1})


def _state(job_id: str) -> StageState:
    return runner.job_store().get(job_id).stages[Stage.classify]


def test_a_batch_shares_one_call_and_a_bad_photo_fails_only_its_own_stage(env) -> None:
    payloads = [_job("a", images.jpeg(300, 200)), _job("bad", images.truncated_jpeg()), _job("b", images.jpeg_exif_rotated(300, 150))]
    calls: list[int] = []

    def work_batch(items):
        calls.append(len(items))
        return _sizes(items)

    outcomes = runner.run_stage_batch(BatchTaskDouble(), [_request(p) for p in payloads], work_batch, _one)
    assert outcomes == [{"status": "succeeded"}, {"failed": "invalid_image"}, {"status": "succeeded"}]
    assert calls == [2]  # one call, without the photo that did not decode
    assert runner.job_store().get("b").results[Stage.classify] == {"size": [150, 300], "n": 2}  # upright, its own result
    assert _state("a").batch_size == 2 and _state("a").attempts == 1
    assert _state("bad").error.code == "invalid_image"  # the same code run_stage gives


def test_a_transient_error_retries_only_the_item_it_hit(env) -> None:
    payloads = [_job("ok", images.jpeg()), _job("flaky", images.jpeg())]
    shutil.rmtree(Path(os.environ["DAMAGELENS_STORAGE_DIR"]) / "jobs" / "flaky")
    (Path(os.environ["DAMAGELENS_STORAGE_DIR"]) / job_key("flaky", "input.jpg")).mkdir(parents=True)  # read → OSError
    task = BatchTaskDouble(max_retries=3)
    outcomes = runner.run_stage_batch(task, [_request(p, retries=1) for p in payloads], _sizes, _one)
    assert outcomes == [{"status": "succeeded"}, {"retry": 2}]
    assert [job for job, _ in task.republished] == ["flaky"] and 0 < task.republished[0][1] <= 2.0  # run_stage's back-off
    assert _state("flaky").status == Status.running and _state("flaky").worker is None  # handed over to its retry
    assert runner.run_stage_batch(task, [_request(payloads[1], retries=3)], _sizes, _one) == [{"failed": "storage_unavailable"}]


def test_a_failing_batch_call_falls_back_to_one_call_per_item(env) -> None:
    payloads = [_job("x", images.jpeg()), _job("y", images.jpeg(200, 100))]

    def broken_batch(items):
        raise RuntimeError("batched kernel missing")

    def picky(payload, image):
        if payload.job_id == "y":
            raise RuntimeError("this one really is bad")
        return _one(payload, image)

    outcomes = runner.run_stage_batch(BatchTaskDouble(), [_request(p) for p in payloads], broken_batch, picky)
    assert outcomes == [{"status": "succeeded"}, {"failed": "internal_error"}]
    assert "this one really is bad" in _state("y").error.message


def test_an_item_whose_earlier_delivery_was_lost_runs_alone_after_the_batch(env) -> None:
    payloads = [_job("p", images.jpeg()), _job("q", images.jpeg()), _job("suspect", images.jpeg())]
    store = runner.job_store()
    store.set_stage("suspect", Stage.classify, StageState(status=Status.running, attempts=1, worker="gone/1"))  # lost once
    calls: list[list[str]] = []

    def work_batch(items):
        calls.append([p.job_id for p, _ in items])
        return _sizes(items)

    assert runner.run_stage_batch(BatchTaskDouble(), [_request(p) for p in payloads], work_batch, _one) == [{"status": "succeeded"}] * 3
    assert calls == [["p", "q"], ["suspect"]]
    assert _state("suspect").attempts == 2


def test_batch_size_one_is_the_plain_task_and_prefetch_follows_the_batch_size(monkeypatch) -> None:
    from celery_batches import Batches

    from damagelens_worker.stages import classify

    assert not isinstance(classify.classify_task, Batches)  # default B = 1: today's task (a proxy forwards isinstance)
    monkeypatch.setenv("DAMAGELENS_WORKER_QUEUE", "detect")
    assert prefetch_multiplier(Settings()) == 1
    assert prefetch_multiplier(Settings(batch_size_detect=8)) == 16
    assert prefetch_multiplier(Settings(batch_size=8, batch_size_detect=1)) == 1
    monkeypatch.setenv("DAMAGELENS_WORKER_QUEUE", "notify")
    assert prefetch_multiplier(Settings(batch_size=8)) == 1  # webhooks never batch


# ---- real worker processes --------------------------------------------------------------------------


@dataclass
class Worker:
    proc: subprocess.Popen
    log: Path

    def child_pids(self) -> list[int]:
        return [c.pid for c in psutil.Process(self.proc.pid).children()]


@dataclass
class BatchStack:
    settings: Settings
    env: dict[str, str]
    logs: Path
    producer: Celery
    jobs: JobStore

    def submit(self, job_id: str, data: bytes, stage: Stage, send: bool = True) -> dict:
        key = job_key(job_id, "input.jpg")
        create_store(self.settings).put(key, data)
        self.jobs.create(_meta(job_id, key, stage))
        payload = StageTask(job_id=job_id, stage=stage, model="fast", input_key=key).model_dump(mode="json")
        if send:
            self.send(payload)
        return payload

    def send(self, payload: dict) -> None:
        self.producer.send_task(TASK_NAMES[Stage(payload["stage"])], args=[payload], queue=payload["stage"])

    def wait(self, job_ids: list[str], stage: Stage, timeout: float = 90.0) -> dict[str, StageState]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = {j: self.jobs.get(j).stages.get(stage, StageState()) for j in job_ids}
            if all(s.status in (Status.succeeded, Status.failed) for s in states.values()):
                return states
            time.sleep(0.1)
        raise AssertionError(f"not finished after {timeout}s: {states}\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(
            f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-lines:]) for p in self.logs.glob("*.log")
        )

    def start_worker(self, queue: str, **extra: str) -> Worker:
        log = self.logs / f"worker-{queue}.log"
        env = {**self.env, **extra}
        proc = subprocess.Popen(
            [sys.executable, "-m", "damagelens.cli", "worker", "--queue", queue],
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
        deadline = time.monotonic() + 180
        while '"worker warm"' not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"{queue} worker did not start\n{self.tail()}")
            time.sleep(0.3)
        return Worker(proc, log)


@pytest.fixture(scope="module")
def batch_stack(redis_server, tmp_path_factory) -> Iterator[BatchStack]:
    redis_url = f"redis://127.0.0.1:{redis_server.port}/6"
    store_dir = tmp_path_factory.mktemp("batch-store")
    logs = tmp_path_factory.mktemp("batch-logs")
    env = {
        **os.environ,
        "DAMAGELENS_REDIS_URL": redis_url,
        "DAMAGELENS_STORAGE_BACKEND": "local",
        "DAMAGELENS_STORAGE_DIR": str(store_dir),
        "DAMAGELENS_TORCH_THREADS": "1",
        "DAMAGELENS_BATCH_SIZE": "4",
        "DAMAGELENS_BATCH_WAIT_MS": "3000",  # long, so a batch of 4 is formed by count, and a smaller one visibly waits
        "DAMAGELENS_HEARTBEAT_INTERVAL_SECONDS": "0.25",
        "DAMAGELENS_HEARTBEAT_TTL_SECONDS": "2",
        "HF_HUB_OFFLINE": "1",
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "False",
    }
    settings = Settings(redis_url=redis_url, storage_backend="local", storage_dir=store_dir)
    producer = Celery("test-producer", broker=redis_url)
    stack = BatchStack(settings, env, logs, producer, JobStore.from_settings(settings))
    yield stack
    import redis

    redis.Redis.from_url(redis_url).flushdb()


@pytest.fixture(scope="module")
def classify_worker(batch_stack: BatchStack) -> Iterator[Worker]:
    worker = batch_stack.start_worker("classify")
    yield worker
    worker.proc.terminate()
    worker.proc.wait(timeout=30)


@pytest.mark.slow
def test_a_batch_of_four_runs_one_forward_pass_with_the_single_photo_results(
    batch_stack: BatchStack, classify_worker: Worker, real_photos: list[Path]
) -> None:
    from damagelens_worker import model_cache

    photos = real_photos[:4]
    for i, photo in enumerate(photos):
        batch_stack.submit(f"real-{i}", photo.read_bytes(), Stage.classify)
    states = batch_stack.wait([f"real-{i}" for i in range(4)], Stage.classify)
    for i, photo in enumerate(photos):
        assert states[f"real-{i}"].status == Status.succeeded, batch_stack.tail()
        assert states[f"real-{i}"].batch_size == 4  # one forward pass for the four
        got = batch_stack.jobs.get(f"real-{i}").results[Stage.classify]
        single, _ = model_cache.classify("fast", load_upright_rgb(photo.read_bytes(), get_settings().max_pixels))
        assert got["label"] == single.label
        assert max(abs(got["probabilities"][k] - p) for k, p in single.probabilities.items()) <= 1e-4


@pytest.mark.slow
def test_a_poison_photo_in_a_batch_fails_only_its_own_stage(batch_stack: BatchStack, classify_worker: Worker, real_photos) -> None:
    inputs = {"good-0": real_photos[0].read_bytes(), "poison": images.truncated_jpeg(), "good-1": real_photos[1].read_bytes()}
    inputs["good-2"] = real_photos[2].read_bytes()
    for job_id, data in inputs.items():
        batch_stack.submit(job_id, data, Stage.classify)
    states = batch_stack.wait(list(inputs), Stage.classify)
    assert states["poison"].status == Status.failed and states["poison"].error.code == "invalid_image"
    for job_id in ("good-0", "good-1", "good-2"):
        assert states[job_id].status == Status.succeeded and states[job_id].batch_size == 3


@pytest.mark.slow
def test_a_transient_storage_error_retries_only_that_task_through_the_broker(
    batch_stack: BatchStack, classify_worker: Worker, real_photos
) -> None:
    outage_payload = batch_stack.submit("outage", real_photos[3].read_bytes(), Stage.classify, send=False)
    path = batch_stack.settings.storage_dir / job_key("outage", "input.jpg")
    data = path.read_bytes()
    path.unlink()
    path.mkdir()  # reading it now fails with an OSError: the local store's StorageError, as an outage would
    for i in range(3):
        batch_stack.submit(f"steady-{i}", real_photos[i].read_bytes(), Stage.classify)
    batch_stack.send(outage_payload)
    states = batch_stack.wait([f"steady-{i}" for i in range(3)], Stage.classify)
    assert all(s.status == Status.succeeded and s.attempts == 1 for s in states.values())
    deadline = time.monotonic() + 30
    while batch_stack.jobs.get("outage").stages[Stage.classify].worker is not None and time.monotonic() < deadline:
        time.sleep(0.05)  # the failed read hands the stage over to its retry
    path.rmdir()
    path.write_bytes(data)  # the outage is over before the retry's countdown (0.5-1 s) ends
    outage = batch_stack.wait(["outage"], Stage.classify)["outage"]
    # Re-published with retries + 1: a second attempt (a third if the first retry still met the outage),
    # and never counted as a lost delivery.
    assert outage.status == Status.succeeded and outage.attempts in (2, 3), batch_stack.tail()
    assert outage.batch_size == 1  # the retry came back on its own, not with the others


@pytest.mark.slow
def test_the_heartbeat_lists_stages_waiting_in_a_batch(batch_stack: BatchStack, classify_worker: Worker, real_photos) -> None:
    batch_stack.submit("held-0", real_photos[4].read_bytes(), Stage.classify)
    batch_stack.submit("held-1", real_photos[5].read_bytes(), Stage.classify)  # 2 < B: they wait for the 3 s timer
    wanted = {stage_ref("held-0", "classify"), stage_ref("held-1", "classify")}
    deadline, seen = time.monotonic() + 2.5, set()
    while time.monotonic() < deadline and not wanted <= seen:
        seen = {ref for beat in live_workers(batch_stack.jobs.client).values() for ref in beat.holding}
        time.sleep(0.05)
    assert wanted <= seen, f"heartbeat holds {seen}"
    states = batch_stack.wait(["held-0", "held-1"], Stage.classify)
    assert all(s.status == Status.succeeded and s.batch_size == 2 for s in states.values())


@pytest.mark.slow
def test_a_child_killed_mid_batch_has_the_batch_requeued_and_finished(batch_stack: BatchStack, real_photos) -> None:
    worker = batch_stack.start_worker("explain")
    try:
        ids = [f"killed-{i}" for i in range(4)]
        for job_id, photo in zip(ids, real_photos, strict=False):
            batch_stack.submit(job_id, photo.read_bytes(), Stage.explain)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the batch is in the child's hands: every stage marked running
            states = [batch_stack.jobs.get(j).stages.get(Stage.explain, StageState()) for j in ids]
            if all(s.status == Status.running for s in states):
                break
            time.sleep(0.005)
        children = worker.child_pids()
        for child in children:
            os.kill(child, signal.SIGSTOP)  # hold the batch mid-flight while the main process keeps beating
        states = [batch_stack.jobs.get(j).stages.get(Stage.explain, StageState()) for j in ids]
        assert all(s.status == Status.running for s in states), "the batch finished before the kill; nothing was tested"
        wanted, held = {stage_ref(j, "explain") for j in ids}, set()
        deadline = time.monotonic() + 3
        while not wanted <= held and time.monotonic() < deadline:
            held = {ref for beat in live_workers(batch_stack.jobs.client).values() for ref in beat.holding}
            time.sleep(0.05)
        assert wanted <= held, f"in-flight batch not in the heartbeat: {held}"  # so the reaper leaves them alone
        for child in children:
            os.kill(child, signal.SIGKILL)  # an OOM kill of the pool child mid-batch
        final = batch_stack.wait(ids, Stage.explain, timeout=120)
        assert all(s.status == Status.succeeded for s in final.values()), batch_stack.tail()
        assert all(s.attempts == 2 for s in final.values())  # redelivered once, none lost
        assert all(s.batch_size == 1 for s in final.values())  # suspects of the crash: run one by one
    finally:
        worker.proc.terminate()
        worker.proc.wait(timeout=30)
