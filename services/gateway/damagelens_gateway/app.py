"""The gateway application: thin HTTP over storage, job state and the queue. No torch, ever."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from damagelens import __version__
from damagelens.inspections import InspectionStore
from damagelens.jobs import JobStore
from damagelens.logs import configure_logging
from damagelens.registry import load_registry
from damagelens.settings import Settings, get_settings
from damagelens.storage import create_store
from damagelens.webhooks.trigger import FinishNotifier
from damagelens_gateway.dispatch import Dispatcher
from damagelens_gateway.errors import install_error_handlers
from damagelens_gateway.idempotency import Idempotency
from damagelens_gateway.job_events import JobEvents
from damagelens_gateway.metrics import MetricsMiddleware, build_registry
from damagelens_gateway.quotas import Admission
from damagelens_gateway.routes import compat, health, inspections, jobs, models
from damagelens_gateway.upload_limit import UploadLimitMiddleware

log = logging.getLogger(__name__)
PURGE_INTERVAL_SECONDS = 3600


async def _purge_loop(app: FastAPI) -> None:
    """Local storage has no lifecycle rules: drop job folders older than the job TTL."""
    while True:
        try:
            removed = await asyncio.to_thread(app.state.store.purge_expired, app.state.settings.job_ttl_seconds)
            if removed:
                log.info("purged expired job objects", extra={"jobs": removed})
        except Exception:
            log.exception("purging expired job objects failed; retrying in an hour")
        await asyncio.sleep(PURGE_INTERVAL_SECONDS)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        purge = asyncio.create_task(_purge_loop(app))
        listener = app.state.job_events.start()
        yield
        purge.cancel()
        await asyncio.wait({purge}, timeout=1)  # a sweep already running in its thread finishes on its own
        await app.state.job_events.stop(listener)

    app = FastAPI(
        title="DamageLens",
        version=__version__,
        description="Asynchronous car-damage analysis: classification, Grad-CAM and damage detection.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.registry = load_registry(settings.registry_path)
    app.state.store = create_store(settings)
    app.state.jobs = JobStore.from_settings(settings)
    app.state.dispatcher = Dispatcher(settings)
    app.state.inspections = InspectionStore(app.state.jobs.client, settings.job_ttl_seconds)
    app.state.jobs.on_finished = FinishNotifier(app.state.jobs, app.state.inspections, app.state.dispatcher.notify)
    app.state.admission = Admission(app.state.jobs, app.state.dispatcher, settings.max_queue_depth)
    app.state.idempotency = Idempotency(app.state.jobs.client, settings.idempotency_ttl_seconds)
    app.state.job_events = JobEvents(settings.redis_url)
    app.state.metrics_registry, app.state.http_requests, app.state.http_duration = build_registry(app.state.jobs, app.state.dispatcher)
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(
        UploadLimitMiddleware,
        max_upload_bytes=settings.max_upload_bytes,
        path_limits={"/v1/inspections": settings.inspection_max_bytes},
    )
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"], allow_headers=["*"])
    install_error_handlers(app)
    for module in (jobs, inspections, models, health, compat):
        app.include_router(module.router)
    if settings.frontend_dir.is_dir():
        app.mount("/", StaticFiles(directory=settings.frontend_dir, html=True), name="frontend")
    return app


def app_factory() -> FastAPI:
    """Entry point for uvicorn (`--factory`): logging is configured before anything else logs."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    return create_app(settings)
