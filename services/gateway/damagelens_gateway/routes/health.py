"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from damagelens_gateway.deps import JobsDep, SettingsDep, StoreDep

router = APIRouter(tags=["health"])
READY_TIMEOUT_SECONDS = 2.0


@router.get("/healthz", operation_id="health-live")
async def healthz() -> dict[str, str]:
    """On the event loop, not in the thread pool: liveness must answer while slow dependencies hold every thread."""
    return {"status": "ok"}


@router.get("/readyz", operation_id="health-ready")
async def readyz(request: Request, jobs: JobsDep, store: StoreDep, settings: SettingsDep) -> JSONResponse:
    checks: dict[str, str] = {}
    probes = [("redis", jobs.ping), ("storage", store.ping)]
    if settings.effective_broker_url != settings.redis_url:  # a broker of its own: every submit needs it too
        probes.append(("broker", request.app.state.dispatcher.ping))
    for name, probe in probes:
        try:
            # Bounded: a dependency that accepts and never answers must not pile probes up in the thread pool.
            await asyncio.wait_for(run_in_threadpool(probe), READY_TIMEOUT_SECONDS)
            checks[name] = "ok"
        except TimeoutError:
            checks[name] = f"unavailable: no answer within {READY_TIMEOUT_SECONDS:g} s"
        except Exception as exc:  # noqa: BLE001  (any failure means not ready)
            checks[name] = f"unavailable: {exc}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ready" if ready else "unavailable", "checks": checks}, status_code=200 if ready else 503)


@router.get("/metrics", operation_id="health-metrics")
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)
