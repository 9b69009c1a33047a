"""`/v1/inspections`: several photos of one vehicle, one summary, one report."""

from __future__ import annotations

import asyncio
import json
from typing import Literal

from fastapi import APIRouter, File, Form, Header, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from damagelens.schemas import TERMINAL, InspectionAccepted, InspectionPublic
from damagelens.webhooks.trigger import INSPECTION_EVENTS
from damagelens_gateway import inspections
from damagelens_gateway.auth import CallerDep
from damagelens_gateway.deps import ServicesDep
from damagelens_gateway.errors import ApiError
from damagelens_gateway.idempotency import fingerprint
from damagelens_gateway.openapi import SUBMIT_RESPONSES, read_responses
from damagelens_gateway.submission import check_cam_method, parse_tasks, parse_webhook

router = APIRouter(prefix="/v1/inspections", tags=["inspections"])
SSE_POLL_SECONDS = 0.5
SSE_HEARTBEAT_SECONDS = 15.0


@router.post(
    "",
    status_code=202,
    response_model=InspectionAccepted,
    operation_id="inspections-submit",
    responses=SUBMIT_RESPONSES,
)
async def create_inspection(
    services: ServicesDep,
    caller: CallerDep,
    images: list[UploadFile] | None = File(None, description="the photos, up to DAMAGELENS_INSPECTION_MAX_PHOTOS (repeat the field)"),
    model: str | None = Form(None),
    tasks: str | None = Form(None, description="comma-separated subset of classify,explain,detect,assess (default: all)"),
    cam_method: str | None = Form(None, description="gradcam | hirescam | gradcam++"),
    reference: str | None = Form(None, max_length=200, description="your claim or vehicle id, echoed back"),
    webhook_url: str | None = Form(None, description="POSTed (signed, Standard Webhooks) when the whole inspection finishes"),
    webhook_events: str | None = Form(None, description="comma-separated; default: all three inspection.* events"),
    idempotency_key: str | None = Header(
        None, alias="Idempotency-Key", description="retry-safe submits: same key + same body → the first answer"
    ),
) -> Response:
    check_cam_method(cam_method)
    stages = parse_tasks(tasks)
    webhook = parse_webhook(webhook_url, webhook_events, INSPECTION_EVENTS, caller.webhook_secret, services.settings)
    uploads = images or []
    inspections.check_batch(len(uploads), 0, services)
    photos: list[tuple[bytes, str]] = []
    total = 0
    for upload in uploads:
        data = await upload.read(services.settings.max_upload_bytes + 1)
        total += len(data)
        inspections.check_batch(len(uploads), total, services)
        photos.append((data, upload.filename or ""))

    async def produce() -> tuple[int, str, dict[str, str]]:
        # Rate limit and queue room only for a request that makes jobs: a retried submit replays its answer.
        await run_in_threadpool(services.admission.take_token, caller)
        await run_in_threadpool(services.admission.check_queues, stages)
        accepted = await run_in_threadpool(
            inspections.submit_inspection,
            photos=photos,
            model=model,
            tasks=stages,
            cam_method=cam_method,
            reference=reference,
            caller=caller,
            services=services,
            webhook=webhook,
        )
        return 202, accepted.model_dump_json(), {"Location": accepted.links.self}

    hook = f"{webhook.url} {','.join(webhook.events)}" if webhook else None
    names = [name for _, name in photos]
    parts = (model, ",".join(s.value for s in stages), cam_method, reference, hook, *(d for d, _ in photos), *names)
    request_hash = await run_in_threadpool(fingerprint, *parts)  # up to 200 MB of photos: off the event loop
    return await services.idempotency.run(idempotency_key, caller.owner, request_hash, produce)


@router.get("/{inspection_id}", response_model=InspectionPublic, operation_id="inspections-read", responses=read_responses("inspection"))
def read_inspection(inspection_id: str, services: ServicesDep, caller: CallerDep) -> InspectionPublic:
    return inspections.public(services, inspections.load(services, inspection_id, caller))


@router.delete(
    "/{inspection_id}", response_model=InspectionPublic, operation_id="inspections-cancel", responses=read_responses("inspection")
)
def cancel_inspection(inspection_id: str, services: ServicesDep, caller: CallerDep) -> InspectionPublic:
    return inspections.cancel(services, inspections.load(services, inspection_id, caller))


@router.get("/{inspection_id}/events", operation_id="inspections-events", responses=read_responses("inspection"))
async def inspection_events(inspection_id: str, request: Request, services: ServicesDep, caller: CallerDep) -> StreamingResponse:
    """Server-sent events: `event: inspection` with the whole document each time it changes."""
    meta = await run_in_threadpool(inspections.load, services, inspection_id, caller)  # 404 before the stream starts

    async def stream():
        last = None
        idle = 0.0
        while True:
            try:
                current = await run_in_threadpool(inspections.public, services, await run_in_threadpool(services.inspections.get, meta.id))
            except Exception as exc:  # noqa: BLE001  (tell the client, then end the stream)
                yield f"event: error\ndata: {json.dumps({'code': 'stream_error', 'message': str(exc)})}\n\n"
                return
            body = current.model_dump_json()
            if body != last:
                yield f"event: inspection\nid: {current.updated_at.isoformat()}\ndata: {body}\n\n"
                last, idle = body, 0.0
            elif idle >= SSE_HEARTBEAT_SECONDS:
                yield ": keep-alive\n\n"
                idle = 0.0
            if current.status in TERMINAL or await request.is_disconnected():
                return
            await asyncio.sleep(SSE_POLL_SECONDS)
            idle += SSE_POLL_SECONDS

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get(
    "/{inspection_id}/report",
    operation_id="inspections-report",
    response_class=HTMLResponse,
    responses={
        **read_responses("inspection"),
        200: {"content": {"text/html": {}, "application/pdf": {}}, "description": "The report, self-contained (images inlined)."},
    },
)
def inspection_report(
    inspection_id: str,
    services: ServicesDep,
    caller: CallerDep,
    format: Literal["html", "pdf"] = Query("html", description="`html` (default) or `pdf`"),
) -> Response:
    from damagelens_gateway.report import render_html, render_pdf

    meta = inspections.load(services, inspection_id, caller)
    document = inspections.public(services, meta)
    html = render_html(document, services)
    stem = f"inspection-{inspection_id}"
    if format == "pdf":
        try:
            pdf = render_pdf(html)
        except ImportError:
            raise ApiError(501, "pdf_unavailable", "PDF rendering needs WeasyPrint on the gateway; ask for the HTML report.") from None
        return Response(pdf, media_type="application/pdf", headers={"Content-Disposition": f'attachment; filename="{stem}.pdf"'})
    return HTMLResponse(html, headers={"Content-Disposition": f'inline; filename="{stem}.html"'})
