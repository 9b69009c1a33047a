"""The seed's `/predict*` endpoints, kept so its clients work unchanged: submit, then wait (bounded)."""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from fastapi import APIRouter, File, Form, Query, UploadFile
from starlette.concurrency import run_in_threadpool

from damagelens.schemas import JobPublic, Stage, Status
from damagelens_gateway.auth import Caller, CallerDep
from damagelens_gateway.deps import Services, ServicesDep
from damagelens_gateway.errors import IMAGE_ERROR_STATUS, ApiError
from damagelens_gateway.routes.jobs import read_upload, submit_owned_job

router = APIRouter(tags=["compat"])
MODE_TO_MODEL = {"resnet": "fast", "fusion": "accurate"}
POLL_SECONDS = 0.2
Upload = UploadFile | None


async def run_and_wait(services: Services, caller: Caller, upload: Upload, alias: Upload, model: str, stage: Stage) -> JobPublic:
    data, filename = await read_upload(upload, alias, services.settings.max_upload_bytes)
    await run_in_threadpool(services.admission.take_token, caller)
    await run_in_threadpool(services.admission.check_queues, [stage])
    job_id = await run_in_threadpool(submit_owned_job, services, caller, data, filename, model, [stage], None)
    deadline = time.monotonic() + services.settings.compat_timeout_seconds
    while True:
        job = await run_in_threadpool(services.jobs.public, job_id)
        if job.status == Status.succeeded:
            return job
        if job.status in (Status.failed, Status.canceled):
            err = job.error
            raise ApiError(
                IMAGE_ERROR_STATUS.get(err.code, 500) if err else 500,
                err.code if err else "job_failed",
                f"{err.message if err else 'The job did not succeed.'} (job {job_id})",
            )
        if time.monotonic() > deadline:
            raise ApiError(
                504,
                "timeout",
                f"No result within {services.settings.compat_timeout_seconds:g}s; keep polling /v1/jobs/{job_id}.",
                headers={"Location": f"/v1/jobs/{job_id}"},
            )
        await asyncio.sleep(POLL_SECONDS)


def prediction(job: JobPublic) -> dict:
    probs = job.results.classification.probabilities
    return {"status": "success", "prediction": dict(sorted(probs.items(), key=lambda kv: kv[1], reverse=True))}


@router.post("/predict/resnet", operation_id="compat-resnet")
async def predict_resnet(services: ServicesDep, caller: CallerDep, image: Upload = File(None), file: Upload = File(None)) -> dict:
    return prediction(await run_and_wait(services, caller, image, file, MODE_TO_MODEL["resnet"], Stage.classify))


@router.post("/predict/fusion", operation_id="compat-fusion")
async def predict_fusion(services: ServicesDep, caller: CallerDep, image: Upload = File(None), file: Upload = File(None)) -> dict:
    return prediction(await run_and_wait(services, caller, image, file, MODE_TO_MODEL["fusion"], Stage.classify))


@router.post("/predict", operation_id="compat-gradcam")
async def predict_gradcam(
    services: ServicesDep,
    caller: CallerDep,
    mode: Literal["resnet", "fusion"] | None = Query(None),
    mode_field: Literal["resnet", "fusion"] | None = Form(None, alias="mode", description="the seed also sent mode in the form"),
    file: Upload = File(None),
    image: Upload = File(None),
) -> dict:
    mode = mode or mode_field or "fusion"
    job = await run_and_wait(services, caller, file, image, MODE_TO_MODEL[mode], Stage.explain)
    viz = job.results.explanation.overlay_url
    return {
        "status": "success",
        "mode": mode,
        "original_image": job.input.url,
        "selected_viz": viz,
        "resnet_viz": viz if mode == "resnet" else None,
        "fusion_viz": viz if mode == "fusion" else None,
    }


@router.post("/predict/yolo", operation_id="compat-yolo")
async def predict_yolo(services: ServicesDep, caller: CallerDep, file: Upload = File(None), image: Upload = File(None)) -> dict:
    job = await run_and_wait(services, caller, file, image, services.settings.default_model, Stage.detect)
    det = job.results.detection
    return {
        "status": "success",
        "original_image": job.input.url,
        "yolo_image": det.image_url,
        "detections": [{"label": d.label, "confidence": d.confidence, "box": d.box} for d in det.detections],
        "total_detections": det.total_detections,
        "message": "Detections found" if det.total_detections else "No damage detected",
    }
