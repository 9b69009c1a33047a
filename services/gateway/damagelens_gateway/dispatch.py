"""Enqueue stage tasks by name: the gateway never imports worker code (or torch)."""

from __future__ import annotations

import base64
import json

from celery import Celery

from damagelens.jobs.reaper import UnackedMessage
from damagelens.schemas import NotifyTask, StageTask
from damagelens.settings import Settings
from damagelens.tasks import NOTIFY_QUEUE, NOTIFY_TASK, QUEUES, TASK_NAMES

# Fail fast when the broker is down so the client gets a 503 instead of a hung request.
PUBLISH_RETRY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}


def stage_payload(raw: bytes | str) -> dict | None:
    """The StageTask payload inside a raw kombu message (as queued, or as kept in the `unacked`
    hash: `[message, exchange, routing key]`), or None for any other message."""
    try:
        message = json.loads(raw)
        if isinstance(message, list):
            message = message[0]
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        if message.get("headers", {}).get("task", "") in TASK_NAMES.values() and args:
            return StageTask.model_validate(args[0]).model_dump(mode="json")
    except (ValueError, KeyError, IndexError, TypeError):
        pass
    return None


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

    def unacked(self) -> list[UnackedMessage]:
        """Messages delivered to some worker and not yet acknowledged (kombu's Redis `unacked` hash)."""
        messages = []
        with self.celery.connection_for_write() as conn:
            channel = conn.default_channel
            client = channel.client
            pipe = client.pipeline(transaction=True)  # one snapshot: a delivery between two reads looked ancient
            pipe.hgetall(channel.unacked_key)
            pipe.zrange(channel.unacked_index_key, 0, -1, withscores=True)
            raw_messages, index = pipe.execute()
            delivered = {(t.decode() if isinstance(t, bytes) else t): score for t, score in index}
            for tag, raw in raw_messages.items():
                tag = tag.decode() if isinstance(tag, bytes) else tag
                if tag in delivered:  # kombu writes both in one pipeline; a tag without a time is mid-write
                    messages.append(UnackedMessage(tag=tag, delivered_at=float(delivered[tag]), payload=stage_payload(raw)))
        return messages

    def waiting(self) -> list[dict]:
        """The StageTask payloads waiting in the stage queues (read in full: meant for an audit)."""
        with self.celery.connection_for_write() as conn:
            client = conn.default_channel.client
            payloads = [stage_payload(raw) for queue in QUEUES.values() for raw in client.lrange(queue, 0, -1)]
        return [p for p in payloads if p is not None]

    def restore(self, tag: str) -> None:
        """Put one unacknowledged message back at the head of its queue (kombu's own restore, atomic)."""
        with self.celery.connection_for_write() as conn:
            conn.default_channel.qos.restore_by_tag(tag, leftmost=False)

    def ping(self) -> None:
        """Raises when the broker does not answer (readiness, where it is not the job store's Redis)."""
        with self.celery.connection_for_write() as conn:
            conn.default_channel.client.ping()

    def queue_lengths(self) -> dict[str, int]:
        with self.celery.connection_for_write() as conn:
            client = conn.default_channel.client
            return {q: int(client.llen(q)) for q in QUEUES.values()}
