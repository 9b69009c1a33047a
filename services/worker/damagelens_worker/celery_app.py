"""The Celery application of the workers (the gateway has its own producer-only app)."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import setup_logging, worker_process_init

from damagelens.logs import configure_logging
from damagelens.schemas import Stage
from damagelens.settings import Settings, get_settings
from damagelens.tasks import QUEUES

STAGE_MODULES: tuple[str, ...] = tuple(f"damagelens_worker.stages.{stage.value}" for stage in Stage)
"""One module per stage; Celery imports them at worker start (`include=`), so this module never imports them."""
QUEUE_ENV = "DAMAGELENS_WORKER_QUEUE"  # set by `damagelens worker --queue` (model_cache reads it too, without this module)
NOTIFY_MODULE = "damagelens_worker.notify"  # webhook deliveries: a queue of their own, not a stage


def prefetch_multiplier(settings: Settings) -> int:
    """1 for plain long tasks (Celery's advice); a batching worker must hold B messages to fill a batch,
    and 2·B lets the next batch fill while one runs (acks_late messages count until the batch returns)."""
    queue = os.environ.get(QUEUE_ENV, "")
    size = settings.batch_size_for(queue) if queue in {stage.value for stage in Stage} else 1
    return 1 if size <= 1 else 2 * size


def create_celery() -> Celery:
    settings = get_settings()
    app = Celery("damagelens", broker=settings.effective_broker_url, include=[*STAGE_MODULES, NOTIFY_MODULE])
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,  # tasks are idempotent per (job, stage), so redelivery is safe
        task_reject_on_worker_lost=True,  # a killed child puts its task back on the queue
        worker_prefetch_multiplier=prefetch_multiplier(settings),
        task_soft_time_limit=settings.task_soft_time_limit_seconds,
        task_time_limit=settings.task_time_limit_seconds,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_seconds},
        broker_connection_retry_on_startup=True,
        worker_proc_alive_timeout=600,  # children load and warm models before taking work
        worker_hijack_root_logger=False,
        task_create_missing_queues=True,
        task_default_queue=QUEUES[next(iter(QUEUES))],
    )
    return app


@setup_logging.connect
def _logging(**_: object) -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)


@worker_process_init.connect
def _warm_up(**_: object) -> None:
    """Load this queue's models in the child, after the fork, before it takes a task."""
    from damagelens_worker.model_cache import warm_up_from_env

    warm_up_from_env()


app = create_celery()

# Signal handlers of the worker's own: heartbeat (main process) and failures Celery handles outside tasks.
from damagelens_worker import failures, heartbeat  # noqa: E402, F401
