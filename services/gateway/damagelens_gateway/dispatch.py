"""Enqueue stage tasks by name: the gateway never imports worker code (or torch)."""

from __future__ import annotations

from celery import Celery

from damagelens.schemas import NotifyTask, StageTask
from damagelens.settings import Settings
from damagelens.tasks import NOTIFY_QUEUE, NOTIFY_TASK, QUEUES, TASK_NAMES

# Fail fast when the broker is down so the client gets a 503 instead of a hung request.
PUBLISH_RETRY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}


class Dispatcher:
    def __init__(self, settings: Settings):
        self.celery = Celery("damagelens-gateway", broker=settings.effective_broker_url)
        self.celery.conf.update(
            task_serializer="json",
            broker_connection_timeout=2,
            broker_connection_retry=False,
            broker_transport_options={
                "visibility_timeout": settings.visibility_timeout_seconds,
                "socket_connect_timeout": 2,
                "socket_timeout": 5,
            },
        )

    def enqueue(self, task: StageTask) -> None:
        self.celery.send_task(
            TASK_NAMES[task.stage],
            args=[task.model_dump(mode="json")],
            queue=QUEUES[task.stage],
            retry=True,
            retry_policy=PUBLISH_RETRY,
            ignore_result=True,
        )

    def notify(self, task: NotifyTask) -> None:
        """Queue a webhook delivery for the `notify` worker."""
        self.celery.send_task(
            NOTIFY_TASK, args=[task.model_dump(mode="json")], queue=NOTIFY_QUEUE, retry=True, retry_policy=PUBLISH_RETRY, ignore_result=True
        )

    def queue_lengths(self) -> dict[str, int]:
        with self.celery.connection_for_write() as conn:
            client = conn.default_channel.client
            return {q: int(client.llen(q)) for q in QUEUES.values()}
