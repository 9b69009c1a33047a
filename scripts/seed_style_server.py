#!/usr/bin/env python3
"""The seed's way of serving, rebuilt from DamageLens's own model code: the baseline of `make bench`.

One process, one uvicorn worker, models loaded once at start-up, and every analysis of a request
(classify, Grad-CAM, YOLO, and assess when asked for) run one after another inside that request.
The handler is `async def` and calls the models directly, as the seed's FastAPI app did, so it
blocks the event loop: requests are served strictly one at a time and the others wait in the
socket backlog. No queue, no Redis, no object store; the images are returned inline as `data:`
URLs in the same result schema the stack uses (`JobResults`).

The models come from the worker's per-process cache (`damagelens_worker.model_cache`), so both
sides of the benchmark run the same weights, the same inference backend and the same
pre/post-processing; only the way of serving differs.

    python scripts/seed_style_server.py --port 8801 --models fast accurate
    curl -F image=@car.jpg -F model=fast http://127.0.0.1:8801/predict
"""

from __future__ import annotations

import argparse
import base64
import sys
import time
from collections.abc import Sequence
from contextlib import asynccontextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT / "shared", ROOT / "services" / "worker", ROOT / "services" / "gateway"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from fastapi import FastAPI, File, Form, UploadFile  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402
from PIL import Image  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402

from damagelens.imaging import ImageError, load_upright_rgb  # noqa: E402
from damagelens.registry import UnknownModelError  # noqa: E402
from damagelens.schemas import (  # noqa: E402
    DEFAULT_STAGES,
    DetectResult,
    ExplainResult,
    JobResults,
    Stage,
)
from damagelens.settings import get_settings  # noqa: E402
from damagelens_gateway.errors import IMAGE_ERROR_STATUS  # noqa: E402  (the same statuses as the stack)


class SeedStyleAnswer(BaseModel):
    """What one `/predict` request returns: every result, the images inline, and where the time went."""

    model: str
    tasks: list[Stage]
    results: JobResults
    speed_ms: dict[Stage, dict[str, float]] = Field(description="each stage's own timings, the same keys the workers record")
    encode_ms: dict[Stage, float] = Field(default_factory=dict, description="drawing and encoding the stage's images")
    decode_ms: float = Field(description="decoding the upload once (the stack decodes it in every stage)")
    total_ms: float = Field(description="the whole request inside the server, upload parsing excluded")
    handled: tuple[float, float] = Field(
        (0.0, 0.0), description="the server's monotonic clock when the analysis began and ended: never overlapping between requests"
    )


def data_url(data: bytes, content_type: str) -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"


def parse_tasks(raw: str | None) -> list[Stage]:
    """`classify,explain,...` in the stack's order; empty means the stack's default set."""
    if not raw:
        return list(DEFAULT_STAGES)
    wanted = {part.strip() for part in raw.split(",") if part.strip()}
    unknown = wanted - {stage.value for stage in Stage}
    if unknown:
        raise ValueError(f"unknown task(s) {sorted(unknown)}; choose from {[s.value for s in Stage]}")
    return [stage for stage in Stage if stage.value in wanted]


def analyse(data: bytes, model: str, tasks: Sequence[Stage]) -> SeedStyleAnswer:
    """Every requested analysis of one photo, one after another, as the seed's request did."""
    from damagelens.vision.assess import draw_assessment
    from damagelens.vision.detector import draw_detections, to_jpeg
    from damagelens_worker import model_cache

    started = time.perf_counter()
    image = load_upright_rgb(data, get_settings().max_pixels)
    decode_ms = (time.perf_counter() - started) * 1000
    results, speed, encode = JobResults(), {}, {}
    for stage in tasks:
        if stage == Stage.classify:
            results.classification, speed[stage] = model_cache.classify(model, image)
        elif stage == Stage.explain:
            explainer = model_cache.explainer(model, get_settings().cam_method)
            explanation, speed[stage] = explainer(image)
            t0 = time.perf_counter()
            overlay, heatmap = explanation.overlay_jpeg(), explanation.heatmap_png()
            encode[stage] = (time.perf_counter() - t0) * 1000
            results.explanation = ExplainResult(
                method=explanation.method,
                target_label=explanation.target_label,
                overlay_url=data_url(overlay, "image/jpeg"),
                heatmap_url=data_url(heatmap, "image/png"),
                model=explainer.entry.name,
                model_version=explainer.entry.version,
            )
        elif stage == Stage.detect:
            detector = model_cache.detector()
            detections, speed[stage] = detector(image)
            t0 = time.perf_counter()
            rendered = to_jpeg(draw_detections(image, detections))
            encode[stage] = (time.perf_counter() - t0) * 1000
            results.detection = DetectResult(
                detections=detections,
                total_detections=len(detections),
                image_width=image.width,
                image_height=image.height,
                image_url=data_url(rendered, "image/jpeg"),
                model=detector.entry.name,
                model_version=detector.entry.version,
            )
        elif stage == Stage.assess:
            assessment, speed[stage] = model_cache.assessor()(image, "")
            t0 = time.perf_counter()
            rendered = to_jpeg(draw_assessment(image, assessment))
            encode[stage] = (time.perf_counter() - t0) * 1000
            results.assessment = assessment.model_copy(update={"image_url": data_url(rendered, "image/jpeg")})
    return SeedStyleAnswer(
        model=model,
        tasks=list(tasks),
        results=results,
        speed_ms=speed,
        encode_ms={stage: round(ms, 2) for stage, ms in encode.items()},
        decode_ms=round(decode_ms, 2),
        total_ms=round((time.perf_counter() - started) * 1000, 2),
    )


def warm_up(models: Sequence[str], tasks: Sequence[Stage]) -> None:
    """Load every model and run it once, like the seed's start-up, so no request pays for loading."""
    blank = Image.new("RGB", (320, 240), (128, 128, 128))
    import io

    buf = io.BytesIO()
    blank.save(buf, format="JPEG")
    for model in models:
        analyse(buf.getvalue(), model, tasks)


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def create_app(preload: Sequence[str] = (), preload_tasks: Sequence[Stage] = DEFAULT_STAGES) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI):
        warm_up(preload, preload_tasks)
        yield

    app = FastAPI(title="DamageLens seed-style server (benchmark baseline)", lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.post("/predict", response_model=SeedStyleAnswer)
    async def predict(
        image: UploadFile | None = File(None),
        file: UploadFile | None = File(None, description="the seed's field name"),
        model: str = Form("fast"),
        tasks: str | None = Form(None, description="comma-separated subset of classify,explain,detect,assess (default: all)"),
    ):
        upload = image or file
        if upload is None:
            return error(422, "missing_image", "Send the photo as multipart field `image` (or `file`).")
        try:
            stages = parse_tasks(tasks)
        except ValueError as exc:
            return error(422, "invalid_tasks", str(exc))
        data = await upload.read()
        try:
            # Deliberately synchronous inside an async handler: the seed's one-request-at-a-time serving.
            began = time.monotonic()
            answer = analyse(data, model, stages)
            return answer.model_copy(update={"handled": (began, time.monotonic())})
        except ImageError as exc:
            return error(IMAGE_ERROR_STATUS.get(exc.code, 422), exc.code, exc.message)
        except UnknownModelError as exc:
            return error(404, "unknown_model", str(exc))

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8801)
    parser.add_argument("--models", nargs="*", default=["fast"], help="classifiers to load and warm at start-up")
    parser.add_argument("--tasks", default=None, help="analyses to warm at start-up (default: the stack's default set)")
    args = parser.parse_args()
    app = create_app(args.models, parse_tasks(args.tasks))
    uvicorn.run(app, host=args.host, port=args.port, workers=1, log_level="warning", backlog=2048)


if __name__ == "__main__":
    main()
