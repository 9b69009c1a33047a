"""The reaper and worker heartbeats against a real Redis: who is dead, what is orphaned, one leader.

Most tests give the reaper a broker double that records what would be sent; the last ones use
the gateway's real Dispatcher on the real Redis broker (and tests/e2e/test_recovery.py runs it
against real workers).
"""

from __future__ import annotations

import base64
import json
import threading
import time

import pytest

from damagelens.jobs import JobMeta, JobStore
from damagelens.jobs.liveness import Heartbeat, WorkerBeat, heartbeat_key, live_workers, publish_beat, stage_ref
from damagelens.jobs.reaper import LOCK_KEY, Reaper
from damagelens.jobs.state import utcnow
from damagelens.jobs.store import EVENTS_CHANNEL, redis_client
from damagelens.schemas import Stage, StageState, StageTask, Status
from damagelens.settings import Settings
from damagelens.tasks import NOTIFY_TASK

pytestmark = pytest.mark.integration


def _meta(job_id: str, **extra) -> JobMeta:
    fields = {"model": "fast", "tasks": [Stage.classify], "created_at": utcnow(), "filename": "c.jpg", "content_type": "image/jpeg"}
    return JobMeta(**{**fields, **extra}, id=job_id, input_key=f"jobs/{job_id}/input.jpg", width=1, height=1)


def _store_with_running_stage(redis_url: str, job_id: str, worker: str, attempts: int = 1) -> tuple[JobStore, StageTask]:
    store = JobStore.from_url(redis_url, ttl_seconds=300)
    store.create(_meta(job_id))
    task = StageTask(job_id=job_id, stage=Stage.classify, model="fast", input_key=f"jobs/{job_id}/input.jpg", cam_method="hirescam")
    running = StageState(status=Status.running, attempts=attempts, started_at=utcnow(), worker=worker)
    assert store.set_stage(job_id, Stage.classify, running, task=task.model_dump(mode="json"))
    return store, task


class RecordingBroker:
    def __init__(self) -> None:
        self.sent: list[StageTask] = []

    def enqueue(self, task: StageTask) -> None:
        self.sent.append(task)

    def unacked(self) -> list:
        return []

    def restore(self, tag: str) -> None:
        raise AssertionError("nothing to restore here")

    def waiting(self) -> list[dict]:
        return []


def _settings(**extra) -> Settings:
    return Settings(heartbeat_interval_seconds=0.2, heartbeat_ttl_seconds=2, reaper_interval_seconds=0.1, **extra)


def test_running_index_follows_stage_writes(redis_url: str) -> None:
    store, task = _store_with_running_stage(redis_url, "j1", "w/1")
    [entry] = store.running(Stage.classify)
    assert (entry.job_id, entry.worker, entry.task) == ("j1", "w/1", task.model_dump(mode="json"))
    assert store.running_counts()[Stage.classify] == 1
    done = StageState(status=Status.succeeded, attempts=1, started_at=utcnow(), finished_at=utcnow(), worker="w/1")
    store.set_stage("j1", Stage.classify, done, {"x": 1})
    assert store.running(Stage.classify) == [] and store.running_counts()[Stage.classify] == 0


def test_a_dead_worker_stage_is_reenqueued_once_with_its_attempt_counted(redis_url: str) -> None:
    store, task = _store_with_running_stage(redis_url, "dead", "classify@h/111", attempts=1)
    broker = RecordingBroker()
    sent = broker.sent
    reaper = Reaper(store, broker, _settings())
    assert [e.job_id for e in reaper.tick()] == ["dead"]  # no heartbeat key at all: the worker is gone
    assert sent == [task]  # the same payload, cam_method included
    state = store.get("dead").stages[Stage.classify]
    assert state.status == Status.queued and state.attempts == 1 and state.worker is None
    assert store.stats().stages_reaped[Stage.classify] == 1
    assert reaper.tick() == [] and len(sent) == 1  # nothing left to reap
    # the attempt limit still applies to the new delivery: attempts are never reset


def test_a_live_worker_holding_its_stage_is_left_alone(redis_url: str) -> None:
    store, _ = _store_with_running_stage(redis_url, "alive", "classify@h/222")
    publish_beat(store.client, WorkerBeat(worker="classify@h/222", at=utcnow(), holding=[stage_ref("alive", "classify")]), 5)
    broker = RecordingBroker()
    assert Reaper(store, broker, _settings()).tick() == [] and broker.sent == []
    assert store.get("alive").stages[Stage.classify].status == Status.running


def test_a_stage_its_live_worker_no_longer_holds_is_reaped_after_a_ttl(redis_url: str) -> None:
    """A dropped task (a retry that could not be published) on a worker that lives on."""
    store, _ = _store_with_running_stage(redis_url, "dropped", "classify@h/333")
    # A beat taken right after the start proves nothing (the worker may not have recorded it yet) ...
    publish_beat(store.client, WorkerBeat(worker="classify@h/333", at=utcnow(), holding=[]), 30)
    reaper = Reaper(store, RecordingBroker(), _settings())
    reaper.tick()
    time.sleep(2.1)
    assert reaper.tick() == []
    time.sleep(0.3)  # ... one taken a heartbeat interval later does
    publish_beat(store.client, WorkerBeat(worker="classify@h/333", at=utcnow(), holding=[]), 30)
    assert reaper.tick() == []  # first seen unheld: wait a TTL, the worker may just be starting it
    time.sleep(2.1)
    assert [e.job_id for e in reaper.tick()] == ["dropped"] and len(reaper.broker.sent) == 1


def test_a_redelivery_that_already_started_is_not_reaped(redis_url: str) -> None:
    store, task = _store_with_running_stage(redis_url, "raced", "classify@h/444")
    new = StageState(status=Status.running, attempts=2, started_at=utcnow(), worker="classify@h/555")
    store.set_stage("raced", Stage.classify, new, task=task.model_dump(mode="json"))
    assert not store.reap("raced", Stage.classify, "classify@h/444")  # compare-and-set: the new holder wins
    assert store.get("raced").stages[Stage.classify].worker == "classify@h/555"


def test_only_one_reaper_acts(redis_url: str) -> None:
    store, _ = _store_with_running_stage(redis_url, "lock", "classify@h/666")
    first_broker, second_broker = RecordingBroker(), RecordingBroker()
    second_sent = second_broker.sent
    first = Reaper(store, first_broker, _settings(), node="a")
    second = Reaper(store, second_broker, _settings(), node="b")
    assert first.is_leader() and not second.is_leader()
    assert second.tick() == [] and second_sent == []
    assert len(first.tick()) == 1
    first.release()
    assert store.client.get(LOCK_KEY) is None and second.is_leader()


def test_heartbeat_thread_beats_and_forgets(redis_url: str) -> None:
    store = JobStore.from_url(redis_url, ttl_seconds=300)
    beat = Heartbeat(store.client, "detect@h/777", lambda: ["j:detect"], interval_seconds=0.1, ttl_seconds=2)
    beat.start()
    time.sleep(0.35)
    assert live_workers(store.client)["detect@h/777"].holding == ["j:detect"]
    assert 0 < store.client.ttl(heartbeat_key("detect@h/777")) <= 2
    beat.stop()
    assert "detect@h/777" not in live_workers(store.client)


def test_stage_writes_are_published(redis_url: str) -> None:
    store = JobStore.from_url(redis_url, ttl_seconds=300)
    pubsub = store.client.pubsub()
    pubsub.subscribe(EVENTS_CHANNEL)
    pubsub.get_message(timeout=1)  # the subscribe confirmation
    _store_with_running_stage(redis_url, "pub", "w/1")
    message = pubsub.get_message(timeout=2)
    assert message and message["data"] == "pub"
    store.cancel("pub")
    assert pubsub.get_message(timeout=2)["data"] == "pub"
    pubsub.close()


def test_reaper_runs_until_stopped(redis_url: str) -> None:
    store, _ = _store_with_running_stage(redis_url, "loop", "gone/1")
    broker = RecordingBroker()
    sent = broker.sent
    stop = threading.Event()
    thread = threading.Thread(target=Reaper(store, broker, _settings(), node="loop").run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 5
    while not sent and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(5)
    assert len(sent) == 1 and not thread.is_alive()
    assert store.client.get(LOCK_KEY) is None  # released on the way out
    assert json.loads(store.get("loop").stages[Stage.classify].model_dump_json())["status"] == "queued"


def test_a_message_a_dead_worker_took_is_put_back_at_the_head_of_its_queue(redis_url: str) -> None:
    """The real Dispatcher on the real broker: a consumer takes a message and dies without acking."""
    from damagelens_gateway.dispatch import Dispatcher

    settings = _settings(redis_url=redis_url)
    store, task = _store_with_running_stage(redis_url, "taken", "classify@h/888")
    dispatcher = Dispatcher(settings)
    dispatcher.enqueue(task)
    with dispatcher.celery.connection_for_write() as conn:
        channel = conn.default_channel
        assert channel.basic_get("classify", no_ack=False) is not None  # now in the `unacked` hash
        channel.do_restore = False  # the consumer dies: it never puts the message back itself
    [message] = dispatcher.unacked()
    assert message.payload == task.model_dump(mode="json")
    store.client.zadd("unacked_index", {message.tag: time.time() - 60})  # taken a minute ago
    reaper = Reaper(store, dispatcher, settings)
    assert [e.job_id for e in reaper.tick()] == ["taken"]
    assert dispatcher.unacked() == [] and dispatcher.queue_lengths()["classify"] == 1  # restored, not sent twice
    assert store.stats().messages_restored == 1


def test_a_fresh_unacked_message_or_one_a_live_worker_holds_stays(redis_url: str) -> None:
    from damagelens_gateway.dispatch import Dispatcher

    settings = _settings(redis_url=redis_url)
    store, task = _store_with_running_stage(redis_url, "held", "classify@h/999")
    publish_beat(store.client, WorkerBeat(worker="classify@h/999", at=utcnow(), holding=[stage_ref("held", "classify")]), 30)
    dispatcher = Dispatcher(settings)
    dispatcher.enqueue(task)
    with dispatcher.celery.connection_for_write() as conn:
        conn.default_channel.basic_get("classify", no_ack=False)
        conn.default_channel.do_restore = False
    [message] = dispatcher.unacked()
    store.client.zadd("unacked_index", {message.tag: time.time() - 60})
    assert Reaper(store, dispatcher, settings).tick() == []
    assert len(dispatcher.unacked()) == 1  # a live worker holds it


def test_reaper_ping_answers_after_a_pass(redis_url: str, monkeypatch) -> None:
    import socket

    from typer.testing import CliRunner

    from damagelens.cli import app
    from damagelens.settings import get_settings

    monkeypatch.setenv("DAMAGELENS_REDIS_URL", redis_url)
    get_settings.cache_clear()
    assert CliRunner().invoke(app, ["reaper-ping"]).exit_code == 1
    store = JobStore.from_url(redis_url, ttl_seconds=300)
    Reaper(store, RecordingBroker(), _settings(), host=socket.gethostname()).tick()
    result = CliRunner().invoke(app, ["reaper-ping"])
    assert result.exit_code == 0, result.output


def test_a_message_is_not_taken_from_a_worker_whose_beats_lag(redis_url: str) -> None:
    """A worker starved of CPU beats late: its last beat predates the delivery, so it may hold it."""
    from damagelens_gateway.dispatch import Dispatcher

    settings = _settings(redis_url=redis_url)
    store, task = _store_with_running_stage(redis_url, "starved", "classify@h/1234")
    publish_beat(store.client, WorkerBeat(worker="classify@h/1234", at=utcnow(), holding=[]), 30)
    time.sleep(0.3)
    dispatcher = Dispatcher(settings)
    dispatcher.enqueue(task)
    with dispatcher.celery.connection_for_write() as conn:
        conn.default_channel.basic_get("classify", no_ack=False)
        conn.default_channel.do_restore = False
    assert Reaper(store, dispatcher, settings).stranded(live_workers(store.client)) == []


def test_the_audit_resends_a_queued_stage_whose_message_exists_nowhere(redis_url: str) -> None:
    """The real broker: one stage's message waits in its queue, the other's was lost (popped by a
    worker when Redis went down). Only the lost one is sent again, after two audits."""
    from datetime import timedelta

    from damagelens_gateway.dispatch import Dispatcher

    settings = _settings(redis_url=redis_url)
    store = JobStore.from_url(redis_url, ttl_seconds=300)
    old = utcnow() - timedelta(minutes=5)
    meta = _meta("lostmsg", tasks=[Stage.classify, Stage.explain], created_at=old, cam_method="hirescam")
    store.create(meta)
    dispatcher = Dispatcher(settings)
    dispatcher.enqueue(StageTask(job_id="lostmsg", stage=Stage.classify, model="fast", input_key=meta.input_key))
    reaper = Reaper(store, dispatcher, settings)
    assert reaper.audit({}) == []  # first sighting: it might be in flight
    assert reaper.audit({}) == [("lostmsg", Stage.explain)]
    assert dispatcher.queue_lengths() == {"classify": 1, "explain": 1, "detect": 0, "assess": 0}
    [resent] = [p for p in dispatcher.waiting() if p["stage"] == "explain"]
    assert resent["cam_method"] == "hirescam"
    assert reaper.audit({}) == [] and store.stats().messages_resent == 1  # now it waits in its queue


def test_the_audit_resends_a_stage_whose_retry_could_not_be_published(redis_url: str) -> None:
    """A worker hit a transient error, handed the stage over to its retry (`running`, no worker, out of
    the running index), and the broker refused the retry: the stage is sent again, its retry counted.
    A stage held by a live worker is left alone."""
    from datetime import timedelta

    from damagelens_gateway.dispatch import Dispatcher

    settings = _settings(redis_url=redis_url)
    store = JobStore.from_url(redis_url, ttl_seconds=300)
    old = utcnow() - timedelta(minutes=5)
    for job_id in ("handed", "held"):
        store.create(_meta(job_id, created_at=old))
    started = StageState(status=Status.running, attempts=1, started_at=old)
    store.set_stage("handed", Stage.classify, started.model_copy(update={"retries": 1}))  # what the hand-over writes
    task = StageTask(job_id="held", stage=Stage.classify, model="fast", input_key="jobs/held/input.jpg")
    store.set_stage("held", Stage.classify, started.model_copy(update={"worker": "w1/1"}), task=task.model_dump(mode="json"))
    beats = {"w1": WorkerBeat(worker="w1", at=utcnow(), holding=[stage_ref("held", "classify")])}
    dispatcher = Dispatcher(settings)
    reaper = Reaper(store, dispatcher, settings)
    assert reaper.audit(beats) == []
    assert reaper.audit(beats) == [("handed", Stage.classify)]
    assert [p["job_id"] for p in dispatcher.waiting()] == ["handed"]
    assert store.get("handed").stages[Stage.classify].retries == 1  # the retry stays counted for the attempt limit


def test_the_audit_queues_a_finish_webhook_the_broker_had_refused(redis_url: str) -> None:
    """A job finished while the broker refused its webhook task (marked `announce_pending`): the
    reaper's audit queues it on the real broker, once."""
    from damagelens.inspections.store import InspectionStore
    from damagelens.webhooks.trigger import FinishNotifier
    from damagelens_gateway.dispatch import Dispatcher

    settings = _settings(redis_url=redis_url)
    store = JobStore.from_url(redis_url, ttl_seconds=300)
    dispatcher = Dispatcher(settings)
    store.on_finished = FinishNotifier(store, InspectionStore(store.client, 300), dispatcher.notify)
    store.create(_meta("unannounced", webhook_url="https://claims.example.com/hook", webhook_events=["job.succeeded"]))
    store.on_finished, notifier = None, store.on_finished  # finish it with no announcement, then mark it as refused
    store.set_stage(
        "unannounced", Stage.classify, StageState(status=Status.succeeded, attempts=1, started_at=utcnow(), finished_at=utcnow())
    )
    store.client.hset(store.key("unannounced"), "announce_pending", "1")
    store.on_finished = notifier
    broker = redis_client(settings.effective_broker_url)
    before = broker.llen("notify")
    reaper = Reaper(store, dispatcher, settings)
    reaper.audit({})
    assert broker.llen("notify") == before + 1
    message = json.loads(broker.lrange("notify", 0, 0)[0])
    body = base64.b64decode(message["body"]) if message["properties"].get("body_encoding") == "base64" else message["body"]
    assert message["headers"]["task"] == NOTIFY_TASK
    assert json.loads(body)[0][0] == {
        "kind": "job",
        "id": "unannounced",
        "event": "job.succeeded",
        "webhook_id": "msg_job_unannounced_succeeded",
    }
    assert not store.get("unannounced").announce_pending
    reaper.audit({})
    assert broker.llen("notify") == before + 1  # not queued twice
