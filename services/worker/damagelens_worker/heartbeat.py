"""This worker process's heartbeat: started in the main process before the pool forks, so every
child inherits the id it records on the stages it runs (`StageState.worker`)."""

from __future__ import annotations

import logging
import os

from celery.signals import celeryd_init, worker_shutdown
from celery.worker import state as worker_state

from damagelens.jobs.liveness import Heartbeat, stage_ref
from damagelens.jobs.store import redis_client
from damagelens.settings import get_settings

log = logging.getLogger(__name__)
_worker_id: str | None = None
_heartbeat: Heartbeat | None = None


def worker_id() -> str | None:
    """`<celery node name>/<main pid>`: a restarted worker (same name, new pid) is a new worker."""
    return _worker_id


def holding() -> list[str]:
    """Stages this process is executing, has reserved, or holds for later (a retry's countdown), as `job:stage`;
    with micro-batching also those buffered for, or running in, a batch."""
    refs = []
    held = [*worker_state.active_requests, *worker_state.reserved_requests, *getattr(worker_state, "scheduled_requests", ())]
    for request in held:
        args = request.args or ()
        payload = args[0] if args and isinstance(args[0], dict) else {}
        if "job_id" in payload and "stage" in payload:
            refs.append(stage_ref(payload["job_id"], payload["stage"]))
    from damagelens_worker.batching import LIVE  # batch requests live outside worker_state (batching.py)

    for task in LIVE:
        refs.extend(task.held_refs())
    return refs


@celeryd_init.connect
def start(sender: str | None = None, **_: object) -> None:
    global _worker_id, _heartbeat
    settings = get_settings()
    _worker_id = f"{sender or 'worker'}/{os.getpid()}"
    _heartbeat = Heartbeat(
        redis_client(settings.redis_url), _worker_id, holding, settings.heartbeat_interval_seconds, settings.heartbeat_ttl_seconds
    )
    try:
        _heartbeat.beat()  # before any child can record this id on a stage
    except Exception as exc:  # noqa: BLE001  (Redis down at start: the thread keeps trying)
        log.warning("first heartbeat failed", extra={"worker": _worker_id, "error": str(exc)})
    _heartbeat.start()
    log.info("heartbeat started", extra={"worker": _worker_id})


@worker_shutdown.connect
def stop(**_: object) -> None:
    """Runs after a warm shutdown has finished the tasks in hand."""
    if _heartbeat is not None and _worker_id is not None and os.getpid() == int(_worker_id.rsplit("/", 1)[1]):
        _heartbeat.stop()
