"""The seed's `/predict*` endpoints, kept so its clients work unchanged: submit, then wait (bounded)."""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from fastapi import APIRouter, File, Query, UploadFile
from starlette.concurrency import run_in_threadpool

from damagelens.jobs.state import to_public
from damagelens.schemas import JobPublic, Stage, Status
from damagelens_gateway.deps import DispatcherDep, JobsDep, RegistryDep, SettingsDep, StoreDep
from damagelens_gateway.errors import ApiError
from damagelens_gateway.routes.jobs import read_upload
from damagelens_gateway.submission import submit_job

router = APIRouter(tags=["compat"])
MODE_TO_MODEL = {"resnet": "fast", "fusion": "accurate"}


async def _run_and_wait(data: bytes, filename: str, model: str, stage: Stage, deps: tuple) -> JobPublic:
    settings, registry, store, jobs, dispatcher = deps
    job_id = await run_in_threadpool(
        submit_job,
        data=data,
        filename=filename,
        model=model,
        tasks=[stage],
        settings=settings,
        registry=registry,
        store=store,
        jobs=jobs,
        dispatcher=dispatcher,
    )
    deadline = time.monotonic() + settings.compat_timeout_seconds
    while True:
        job = to_public(await run_in_threadpool(jobs.get, job_id))
        if job.status == Status.succeeded:
            return job
        if job.status in (Status.failed, Status.canceled):
            err = job.error
            raise ApiError(
                422 if err and err.code in ("invalid_image", "image_too_large") else 500,
                err.code if err else "job_failed",
                f"{err.message if err else 'The job did not succeed.'} (job {job_id})",
            )
        if time.monotonic() > deadline:
            raise ApiError(
                504,
                "timeout",
                f"No result within {settings.compat_timeout_seconds:g}s; keep polling /v1/jobs/{job_id}.",
                headers={"Location": f"/v1/jobs/{job_id}"},
            )
        await asyncio.sleep(0.2)


def _deps(settings, registry, store, jobs, dispatcher) -> tuple:
    return settings, registry, store, jobs, dispatcher


async def _classify(mode: str, image, file, settings, registry, store, jobs, dispatcher) -> dict:
    data, filename = await read_upload(image, file, settings.max_upload_bytes)
    job = await _run_and_wait(data, filename, MODE_TO_MODEL[mode], Stage.classify, _deps(settings, registry, store, jobs, dispatcher))
    probs = job.results.classification.probabilities
    return {"status": "success", "prediction": dict(sorted(probs.items(), key=lambda kv: kv[1], reverse=True))}


@router.post("/predict/resnet", operation_id="compat-resnet")
async def predict_resnet(
    settings: SettingsDep,
    registry: RegistryDep,
    store: StoreDep,
    jobs: JobsDep,
    dispatcher: DispatcherDep,
    image: UploadFile | None = File(None),
    file: UploadFile | None = File(None),
) -> dict:
    return await _classify("resnet", image, file, settings, registry, store, jobs, dispatcher)


@router.post("/predict/fusion", operation_id="compat-fusion")
async def predict_fusion(
    settings: SettingsDep,
    registry: RegistryDep,
    store: StoreDep,
    jobs: JobsDep,
    dispatcher: DispatcherDep,
    image: UploadFile | None = File(None),
    file: UploadFile | None = File(None),
) -> dict:
    return await _classify("fusion", image, file, settings, registry, store, jobs, dispatcher)


@router.post("/predict", operation_id="compat-gradcam")
async def predict_gradcam(
    settings: SettingsDep,
    registry: RegistryDep,
    store: StoreDep,
    jobs: JobsDep,
    dispatcher: DispatcherDep,
    mode: Literal["resnet", "fusion"] = Query("fusion"),
    file: UploadFile | None = File(None),
    image: UploadFile | None = File(None),
) -> dict:
    data, filename = await read_upload(file, image, settings.max_upload_bytes)
    job = await _run_and_wait(data, filename, MODE_TO_MODEL[mode], Stage.explain, _deps(settings, registry, store, jobs, dispatcher))
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
async def predict_yolo(
    settings: SettingsDep,
    registry: RegistryDep,
    store: StoreDep,
    jobs: JobsDep,
    dispatcher: DispatcherDep,
    file: UploadFile | None = File(None),
    image: UploadFile | None = File(None),
) -> dict:
    data, filename = await read_upload(file, image, settings.max_upload_bytes)
    job = await _run_and_wait(data, filename, settings.default_model, Stage.detect, _deps(settings, registry, store, jobs, dispatcher))
    det = job.results.detection
    return {
        "status": "success",
        "original_image": job.input.url,
        "yolo_image": det.image_url,
        "detections": [{"label": d.label, "confidence": d.confidence, "box": d.box} for d in det.detections],
        "total_detections": det.total_detections,
        "message": "Detections found" if det.total_detections else "No damage detected",
    }
