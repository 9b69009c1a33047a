"""`/v1/jobs`: submit, poll, follow live (SSE), fetch artifacts, cancel."""

from __future__ import annotations

import asyncio
import json
from contextlib import suppress

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from damagelens.jobs.state import links
from damagelens.schemas import ARTIFACTS, CAM_METHODS, TERMINAL, JobAccepted, JobPublic, Status
from damagelens.storage import ObjectNotFound, job_key
from damagelens.storage.base import guess_content_type
from damagelens_gateway.deps import JobsDep, ServicesDep, SettingsDep, StoreDep
from damagelens_gateway.errors import ApiError
from damagelens_gateway.job_events import JobEvents
from damagelens_gateway.submission import parse_tasks, submit_job

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
SSE_POLL_SECONDS = 0.4  # only while the pub/sub subscription is down
SSE_HEARTBEAT_SECONDS = 15.0


async def read_upload(image: UploadFile | None, file: UploadFile | None, limit: int) -> tuple[bytes, str]:
    upload = image or file
    if upload is None:
        raise ApiError(400, "missing_image", "Send the photo as multipart form field 'image' (or 'file').")
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, "upload_too_large", f"The upload exceeds the limit of {limit:,} bytes.")
    return data, upload.filename or ""


@router.post("", status_code=202, response_model=JobAccepted, operation_id="jobs-submit")
async def create_job(
    services: ServicesDep,
    image: UploadFile | None = File(None, description="the photo"),
    file: UploadFile | None = File(None, description="alias of `image`"),
    model: str | None = Form(None),
    tasks: str | None = Form(None, description="comma-separated: classify,explain,detect"),
    cam_method: str | None = Form(None, description="gradcam | hirescam | gradcam++"),
) -> Response:
    if cam_method is not None and cam_method not in CAM_METHODS:
        raise ApiError(422, "unknown_cam_method", f"cam_method must be one of {', '.join(CAM_METHODS)}.")
    data, filename = await read_upload(image, file, services.settings.max_upload_bytes)
    job_id = await run_in_threadpool(
        submit_job, data=data, filename=filename, model=model, tasks=parse_tasks(tasks), services=services, cam_method=cam_method
    )
    body = JobAccepted(id=job_id, status=Status.queued, links=links(job_id))
    return Response(body.model_dump_json(), status_code=202, media_type="application/json", headers={"Location": body.links.self})


@router.get("/{job_id}", response_model=JobPublic, operation_id="jobs-read")
def read_job(job_id: str, jobs: JobsDep) -> JobPublic:
    return jobs.public(job_id)


@router.delete("/{job_id}", response_model=JobPublic, operation_id="jobs-cancel")
def cancel_job(job_id: str, jobs: JobsDep) -> JobPublic:
    public = jobs.public(job_id)
    if public.status in TERMINAL:
        return public
    jobs.cancel(job_id)
    return jobs.public(job_id)


@router.get("/{job_id}/events", operation_id="jobs-events")
async def job_events(job_id: str, request: Request, jobs: JobsDep, settings: SettingsDep) -> StreamingResponse:
    first = await run_in_threadpool(jobs.public, job_id)  # 404 before the stream starts
    events: JobEvents = request.app.state.job_events

    async def stream():
        last = None
        current = first
        idle = 0.0
        with events.watch(job_id) as changed:
            while True:
                body = current.model_dump_json()
                if body != last:
                    yield f"event: job\nid: {current.updated_at.isoformat()}\ndata: {body}\n\n"
                    last, idle = body, 0.0
                elif idle >= SSE_HEARTBEAT_SECONDS:
                    yield ": keep-alive\n\n"
                    idle = 0.0
                if current.status in TERMINAL or await request.is_disconnected():
                    return
                # Wait for the job's pub/sub message; re-read anyway after the fallback period (or
                # poll quickly while the subscription is down), so no change is ever missed.
                wait = settings.sse_fallback_poll_seconds if events.connected.is_set() else SSE_POLL_SECONDS
                started = asyncio.get_running_loop().time()
                with suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), min(wait, SSE_HEARTBEAT_SECONDS))
                changed.clear()
                idle += asyncio.get_running_loop().time() - started
                try:
                    current = await run_in_threadpool(jobs.public, job_id)
                except Exception as exc:  # noqa: BLE001  (tell the client, then end the stream)
                    yield f"event: error\ndata: {json.dumps({'code': 'stream_error', 'message': str(exc)})}\n\n"
                    return

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/{job_id}/artifacts/{name}", operation_id="jobs-artifact")
def read_artifact(job_id: str, name: str, jobs: JobsDep, store: StoreDep, settings: SettingsDep) -> Response:
    record = jobs.get(job_id)
    if name == "input":
        key, media_type = record.meta.input_key, record.meta.content_type
    elif name in ARTIFACTS:
        key, media_type = job_key(job_id, name), guess_content_type(name)
    else:
        raise ApiError(404, "artifact_not_found", f"Unknown artifact {name!r}; known: input, {', '.join(ARTIFACTS)}.")
    if settings.s3_public_url and store.exists(key):
        url = store.presign(key)
        if url:
            return RedirectResponse(url, status_code=307)
    try:
        data = store.get(key)
    except ObjectNotFound:
        raise ApiError(404, "artifact_not_found", f"Artifact {name!r} of job {job_id} does not exist (yet).") from None
    return Response(data, media_type=media_type, headers={"Cache-Control": "private, max-age=3600"})
