"""Entry points used by the Procfile, the container images and Kubernetes."""

from __future__ import annotations

import os
import socket

import typer

from damagelens.schemas import Stage
from damagelens.settings import get_settings
from damagelens.tasks import NOTIFY_QUEUE

WORKER_QUEUES: tuple[str, ...] = (*(stage.value for stage in Stage), NOTIFY_QUEUE)


def serve(
    host: str = typer.Option(None, help="bind address (default: DAMAGELENS_HOST)"),
    port: int = typer.Option(None, help="port (default: DAMAGELENS_PORT)"),
    workers: int = typer.Option(1, help="uvicorn worker processes"),
) -> None:
    """Run the HTTP gateway under uvicorn."""
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "damagelens_gateway.app:app_factory",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_config=None,
        proxy_headers=True,
    )


def _queue(value: str) -> str:
    if value not in WORKER_QUEUES:
        raise typer.BadParameter(f"{value!r}: choose one of {', '.join(WORKER_QUEUES)}")
    return value


def worker(
    queue: str = typer.Option(..., callback=_queue, help=f"the one queue this worker serves: {' | '.join(WORKER_QUEUES)}"),
    concurrency: int = typer.Option(None, help="child processes (default: DAMAGELENS_WORKER_CONCURRENCY)"),
) -> None:
    """Run a Celery worker for one queue: a stage (children load and warm its models) or `notify` (webhooks)."""
    os.environ["DAMAGELENS_WORKER_QUEUE"] = queue
    from damagelens_worker.celery_app import app as celery_app

    settings = get_settings()
    celery_app.worker_main(
        [
            "worker",
            "--queues",
            queue,
            "--hostname",
            f"{queue}@{socket.gethostname()}",
            "--concurrency",
            str(concurrency or settings.worker_concurrency),
            "--pool",
            "prefork",
            "--loglevel",
            settings.log_level,
            "--without-gossip",
            "--without-mingle",
        ]
    )


def worker_ping(
    queue: str = typer.Option(..., callback=_queue, help="queue of the worker on this host"),
    timeout: float = typer.Option(5.0, help="seconds to wait for the answer"),
) -> None:
    """Exit 0 when this host's worker for QUEUE answers a Celery ping (container health check)."""
    from celery import Celery

    app = Celery(broker=get_settings().effective_broker_url)
    name = f"{queue}@{socket.gethostname()}"
    replies = app.control.ping(destination=[name], timeout=timeout)
    if not any(name in reply for reply in replies):
        typer.echo(f"no answer from {name}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{name}: pong")


def reaper() -> None:
    """Re-enqueue running stages whose worker died (one active per deployment; extra replicas wait on a Redis lock)."""
    import signal
    import threading

    from damagelens.inspections.store import InspectionStore
    from damagelens.jobs import JobStore
    from damagelens.jobs.reaper import Reaper
    from damagelens.logs import configure_logging
    from damagelens.webhooks.trigger import FinishNotifier
    from damagelens_gateway.dispatch import Dispatcher

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    node = f"{socket.gethostname()}/{os.getpid()}"
    jobs, dispatcher = JobStore.from_settings(settings), Dispatcher(settings)
    jobs.on_finished = FinishNotifier(jobs, InspectionStore(jobs.client, settings.job_ttl_seconds), dispatcher.notify)  # for announce_again
    Reaper(jobs, dispatcher, settings, node=node, host=socket.gethostname()).run(stop)


def reaper_ping() -> None:
    """Exit 0 when this host's reaper has made a pass within a heartbeat TTL (container health check)."""
    from damagelens.jobs.reaper import ALIVE_PREFIX
    from damagelens.jobs.store import redis_client

    if not redis_client(get_settings().redis_url).exists(ALIVE_PREFIX + socket.gethostname()):
        typer.echo(f"no recent pass of the reaper on {socket.gethostname()}", err=True)
        raise typer.Exit(1)
    typer.echo("reaper: alive")


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(worker)
    app.command()(reaper)
    app.command("reaper-ping")(reaper_ping)
    app.command("worker-ping")(worker_ping)
