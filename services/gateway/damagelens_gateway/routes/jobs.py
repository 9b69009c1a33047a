"""`/v1/jobs`: submit, poll, follow live (SSE), fetch artifacts, cancel."""

from __future__ import annotations

import asyncio
import json
import uuid
from contextlib import suppress

from fastapi import APIRouter, File, Form, Header, Request, UploadFile
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from damagelens.jobs import JobNotFound, JobRecord, JobStore
from damagelens.jobs.state import links
from damagelens.schemas import ARTIFACTS, TERMINAL, JobAccepted, JobPublic, Status
from damagelens.storage import ObjectNotFound, job_key
from damagelens.storage.base import guess_content_type
from damagelens.webhooks.trigger import JOB_EVENTS
from damagelens_gateway.auth import Caller, CallerDep
from damagelens_gateway.deps import JobsDep, Services, ServicesDep, SettingsDep, StoreDep
from damagelens_gateway.errors import ApiError
from damagelens_gateway.idempotency import fingerprint
from damagelens_gateway.job_events import JobEvents
from damagelens_gateway.openapi import SUBMIT_RESPONSES, read_responses
from damagelens_gateway.submission import Webhook, check_cam_method, parse_tasks, parse_webhook, submit_job

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
SSE_POLL_SECONDS = 0.4  # only while the pub/sub subscription is down
SSE_HEARTBEAT_SECONDS = 15.0
PRESIGN_SECONDS = 300  # the redirect is followed at once; a leaked URL must not outlive that by hours


async def read_upload(image: UploadFile | None, file: UploadFile | None, limit: int) -> tuple[bytes, str]:
    upload = image or file
    if upload is None:
        raise ApiError(400, "missing_image", "Send the photo as multipart form field 'image' (or 'file').")
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, "upload_too_large", f"The upload exceeds the limit of {limit:,} bytes.")
    return data, upload.filename or ""


@router.post("", status_code=202, response_model=JobAccepted, operation_id="jobs-submit", responses=SUBMIT_RESPONSES)
async def create_job(
    services: ServicesDep,
    caller: CallerDep,
    image: UploadFile | None = File(None, description="the photo"),
    file: UploadFile | None = File(None, description="alias of `image`"),
    model: str | None = Form(None),
    tasks: str | None = Form(None, description="comma-separated subset of classify,explain,detect,assess (default: all)"),
    cam_method: str | None = Form(None, description="gradcam | hirescam | gradcam++"),
    webhook_url: str | None = Form(None, description="POSTed (signed, Standard Webhooks) when the job finishes"),
    webhook_events: str | None = Form(None, description="comma-separated; default job.succeeded,job.failed,job.canceled"),
    idempotency_key: str | None = Header(
        None, alias="Idempotency-Key", description="retry-safe submits: same key + same body → the first answer"
    ),
) -> Response:
    check_cam_method(cam_method)
    stages = parse_tasks(tasks)
    webhook = parse_webhook(webhook_url, webhook_events, JOB_EVENTS, caller.webhook_secret, services.settings)
    data, filename = await read_upload(image, file, services.settings.max_upload_bytes)

    async def produce() -> tuple[int, str, dict[str, str]]:
        # Rate limit and queue room only for a request that makes a job: a retried submit replays its answer.
        await run_in_threadpool(services.admission.take_token, caller)
        await run_in_threadpool(services.admission.check_queues, stages)
        job_id = await run_in_threadpool(submit_owned_job, services, caller, data, filename, model, stages, cam_method, webhook)
        body = JobAccepted(id=job_id, status=Status.queued, links=links(job_id))
        return 202, body.model_dump_json(), {"Location": body.links.self}

    hook = f"{webhook.url} {','.join(webhook.events)}" if webhook else None
    request_hash = await run_in_threadpool(fingerprint, model, ",".join(s.value for s in stages), cam_method, data, filename, hook)
    return await services.idempotency.run(idempotency_key, caller.owner, request_hash, produce)


def submit_owned_job(
    services: Services, caller: Caller, data: bytes, filename: str, model, stages, cam_method, webhook: Webhook | None = None
) -> str:
    """Submit counted against the key's cap on unfinished jobs (released again if the submit fails)."""
    job_id = uuid.uuid4().hex
    services.admission.reserve(caller, [job_id], services.settings.job_ttl_seconds)
    try:
        return submit_job(
            data=data,
            filename=filename,
            model=model,
            tasks=stages,
            services=services,
            cam_method=cam_method,
            owner=caller.owner,
            job_id=job_id,
            webhook=webhook,
        )
    except BaseException:
        services.admission.release(caller, [job_id])
        raise


def owned(jobs: JobStore, job_id: str, caller: Caller) -> JobRecord:
    """The job, if this caller may see it; another key's job does not exist for it."""
    record = jobs.get(job_id)
    if not caller.may_see(record.meta.owner):
        raise JobNotFound(job_id)
    return record


@router.get("/{job_id}", response_model=JobPublic, operation_id="jobs-read", responses=read_responses("job"))
def read_job(job_id: str, jobs: JobsDep, caller: CallerDep) -> JobPublic:
    owned(jobs, job_id, caller)
    return jobs.public(job_id)


@router.delete("/{job_id}", response_model=JobPublic, operation_id="jobs-cancel", responses=read_responses("job"))
def cancel_job(job_id: str, jobs: JobsDep, caller: CallerDep) -> JobPublic:
    owned(jobs, job_id, caller)
    public = jobs.public(job_id)
    if public.status in TERMINAL:
        return public
    jobs.cancel(job_id)
    return jobs.public(job_id)


@router.get("/{job_id}/events", operation_id="jobs-events", responses=read_responses("job"))
async def job_events(job_id: str, request: Request, jobs: JobsDep, caller: CallerDep, settings: SettingsDep) -> StreamingResponse:
    await run_in_threadpool(owned, jobs, job_id, caller)
    first = await run_in_threadpool(jobs.public, job_id)  # 404 before the stream starts
    events: JobEvents = request.app.state.job_events

    async def stream():
        last = None
        current = first
        idle = 0.0
        with events.watch(job_id) as changed:
            changed.set()  # read once more: a change between `first` and the watch was announced to no one here
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


@router.get("/{job_id}/artifacts/{name}", operation_id="jobs-artifact", responses=read_responses("job"))
def read_artifact(job_id: str, name: str, jobs: JobsDep, store: StoreDep, settings: SettingsDep, caller: CallerDep) -> Response:
    record = owned(jobs, job_id, caller)
    if name == "input":
        key, media_type = record.meta.input_key, record.meta.content_type
    elif name in ARTIFACTS:
        key, media_type = job_key(job_id, name), guess_content_type(name)
    else:
        raise ApiError(404, "artifact_not_found", f"Unknown artifact {name!r}; known: input, {', '.join(ARTIFACTS)}.")
    if settings.s3_public_url and store.exists(key):
        url = store.presign(key, expires_seconds=PRESIGN_SECONDS)
        if url:
            return RedirectResponse(url, status_code=307)
    try:
        data = store.get(key)
    except ObjectNotFound:
        raise ApiError(404, "artifact_not_found", f"Artifact {name!r} of job {job_id} does not exist (yet).") from None
    return Response(data, media_type=media_type, headers={"Cache-Control": "private, max-age=3600"})
