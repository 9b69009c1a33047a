"""End to end: HTTP → Redis → real Celery worker processes → S3 → job state → HTTP.

Real photos from ../shared/data (skipped with a reason when absent) and generated images in
every format users send; each artifact is fetched through the gateway and decoded.
"""

from __future__ import annotations

import io
import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest
from PIL import Image

from damagelens.schemas import SEED_LABELS
from tests.e2e.conftest import Stack
from tests.support import images

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _submit(stack: Stack, data: bytes, name: str, **form: str) -> str:
    with stack.client() as client:
        response = client.post("/v1/jobs", files={"image": (name, data)}, data=form)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def _decode(stack: Stack, url: str) -> Image.Image:
    with stack.client() as client:
        response = client.get(url)
    assert response.status_code == 200, f"{url}: {response.text[:200]}"
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


def _check_complete(stack: Stack, job: dict, width: int | None = None, height: int | None = None) -> None:
    assert job["status"] == "succeeded", json.dumps(job, indent=1) + stack.tail_logs()
    assert job["progress"] == 1.0 and job["finished_at"]
    assert all(s["status"] == "succeeded" and s["attempts"] >= 1 for s in job["stages"].values())
    w, h = width or job["input"]["width"], height or job["input"]["height"]
    assert (job["input"]["width"], job["input"]["height"]) == (w, h)

    cls = job["results"]["classification"]
    assert set(cls["probabilities"]) == set(SEED_LABELS)
    assert abs(sum(cls["probabilities"].values()) - 1.0) < 1e-3
    assert cls["label"] == max(cls["probabilities"], key=cls["probabilities"].get)
    with stack.client() as client:
        served = {m["name"]: m for m in client.get("/v1/models").json()["models"]}[cls["model"]]
    threshold = served["review_threshold"]
    assert cls["review"] is (threshold is not None and cls["confidence"] < threshold)  # the review flag follows the registry

    exp = job["results"]["explanation"]
    assert exp["method"] == "gradcam" and exp["target_label"] in SEED_LABELS
    overlay, heatmap = _decode(stack, exp["overlay_url"]), _decode(stack, exp["heatmap_url"])
    assert overlay.width / overlay.height == pytest.approx(w / h, rel=0.02)
    assert heatmap.mode == "L" and heatmap.size == overlay.size

    det = job["results"]["detection"]
    assert (det["image_width"], det["image_height"]) == (w, h)
    assert det["total_detections"] == len(det["detections"])
    for box in det["detections"]:
        x1, y1, x2, y2 = box["box"]
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h and 0 < box["confidence"] <= 1
    assert _decode(stack, det["image_url"]).size == (w, h)
    assert _decode(stack, job["input"]["url"]).size  # the original decodes too
    if "assess" in job["tasks"]:
        _check_assessment(stack, job["results"]["assessment"], w, h)


def _check_assessment(stack: Stack, assessment: dict, w: int, h: int) -> None:
    severity = assessment["severity"]
    assert set(severity["probabilities"]) == {"minor", "moderate", "severe"}
    assert abs(sum(severity["probabilities"].values()) - 1.0) < 1e-3
    assert severity["label"] == max(severity["probabilities"], key=severity["probabilities"].get)
    assert (assessment["image_width"], assessment["image_height"]) == (w, h)
    counts = {"dent": 0, "scratch": 0, "broken": 0}
    for damage in assessment["damages"]:
        assert damage["type"] in counts and damage["severity"] in severity["probabilities"]
        counts[damage["type"]] += 1
        x1, y1, x2, y2 = damage["box"]
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h and 0 < damage["confidence"] <= 1
        assert damage["box_normalized"] == pytest.approx([x1 / w, y1 / h, x2 / w, y2 / h], abs=1e-3)
    assert assessment["counts"] == counts
    assert assessment["model"] == "severity+damage-types" and assessment["model_version"]
    assert assessment["region_model"] == "severity-v1" and assessment["region_model_version"]  # the crops' own model
    rendered = _decode(stack, assessment["image_url"])
    assert rendered.format == "JPEG" and rendered.size == (w, h)


@pytest.fixture(scope="module")
def damaged_photos(data_dir: Path) -> list[Path]:
    """Real damaged-car photos: lensor test close-ups (typed boxes) and one photo per severity from damage-severity/val."""
    lensor = data_dir / "detection" / "lensor" / "images" / "test"
    severity = data_dir / "damage-severity" / "val"
    if not lensor.is_dir() or not severity.is_dir():
        pytest.skip(f"damaged-car photos not available: {lensor} or {severity} is absent (set DAMAGELENS_DATA_DIR)")
    return sorted(lensor.glob("*.jpg"))[:4] + [sorted((severity / s).glob("*.jpg"))[0] for s in ("minor", "moderate", "severe")]


def test_real_damaged_photos_get_an_assessment(stack: Stack, damaged_photos: list[Path]) -> None:
    """`tasks=assess` runs only the fourth stage: typed boxes with a severity each, a photo severity, assessment.jpg."""
    ids = [_submit(stack, photo.read_bytes(), photo.name, tasks="assess") for photo in damaged_photos]
    regions = 0
    for job_id in ids:
        job = stack.wait_for_job(job_id)
        assert job["status"] == "succeeded", json.dumps(job, indent=1) + stack.tail_logs()
        assert job["tasks"] == ["assess"] and set(job["stages"]) == {"assess"}
        assert set(k for k, v in job["results"].items() if v) == {"assessment"}
        _check_assessment(stack, job["results"]["assessment"], job["input"]["width"], job["input"]["height"])
        regions += len(job["results"]["assessment"]["damages"])
    assert regions > 0, "the typed detector found no damage on any of the real damaged photos"


def test_real_photos_get_all_three_results(stack: Stack, real_photos: list[Path]) -> None:
    started = time.monotonic()
    ids = [_submit(stack, photo.read_bytes(), photo.name) for photo in real_photos]
    for job_id in ids:
        _check_complete(stack, stack.wait_for_job(job_id))
    print(f"\n{len(ids)} real photos through all three stages in {time.monotonic() - started:.1f}s")


def test_the_accurate_ensemble_serves_real_photos(stack: Stack, real_photos: list[Path]) -> None:
    """`accurate` is a two-member ensemble: classify (ONNX Runtime in the worker) and Grad-CAM through it."""
    ids = [_submit(stack, photo.read_bytes(), photo.name, model="accurate") for photo in real_photos[:2]]
    for job_id in ids:
        job = stack.wait_for_job(job_id)
        _check_complete(stack, job)
        cls = job["results"]["classification"]
        assert cls["model"] == "accurate" and cls["model_version"].startswith("12.")
        assert job["results"]["explanation"]["target_label"] == cls["label"]  # the CAM explains the ensemble's own class


@pytest.mark.parametrize(
    ("factory", "size"),
    [
        (images.png_rgba, (200, 160)),
        (images.png_grayscale, (200, 160)),
        (images.jpeg_cmyk, (200, 160)),
        (images.png_16bit, (200, 160)),
        (images.webp, (200, 160)),
        (images.jpeg_exif_rotated, (150, 300)),  # stored 300×150 with Orientation=6: analysed upright
    ],
    ids=["png-alpha", "grayscale", "cmyk", "16-bit", "webp", "exif-rotated"],
)
def test_generated_images_in_every_mode(stack: Stack, factory, size: tuple[int, int]) -> None:
    job = stack.wait_for_job(_submit(stack, factory(), "generated", model="fast"))
    _check_complete(stack, job, *size)


def test_events_stream_follows_the_job(stack: Stack) -> None:
    job_id = _submit(stack, images.jpeg(400, 300, seed=3), "sse.jpg", model="fast")
    events = []
    with stack.client(timeout=300) as client, client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    assert events[-1]["status"] == "succeeded"
    assert len(events) >= 2
    assert [e["progress"] for e in events] == sorted(e["progress"] for e in events)


def test_seed_compatible_endpoints(stack: Stack) -> None:
    data = images.jpeg(320, 240, seed=5)
    with stack.client(timeout=300) as client:
        for path in ("/predict/resnet", "/predict/fusion"):
            body = client.post(path, files={"image": ("car.jpg", data, "image/jpeg")}).json()
            assert body["status"] == "success" and set(body["prediction"]) == set(SEED_LABELS)
        cam = client.post("/predict", params={"mode": "resnet"}, files={"file": ("car.jpg", data, "image/jpeg")}).json()
        assert cam["status"] == "success" and cam["mode"] == "resnet"
        assert cam["selected_viz"] == cam["resnet_viz"] and cam["fusion_viz"] is None
        assert client.get(cam["selected_viz"]).status_code == 200 and client.get(cam["original_image"]).status_code == 200
        yolo = client.post("/predict/yolo", files={"file": ("car.jpg", data, "image/jpeg")}).json()
        assert yolo["status"] == "success" and yolo["total_detections"] == len(yolo["detections"])
        assert yolo["message"] in ("Detections found", "No damage detected")
        assert client.get(yolo["yolo_image"]).status_code == 200


def test_worker_killed_mid_task_job_still_completes(stack: Stack) -> None:
    """SIGKILL the child running `explain`; acks_late + reject_on_worker_lost redeliver the task."""
    parent = psutil.Process(stack.workers["explain"].pid)
    big = images.jpeg(4000, 3000, seed=7)  # decode + CAM + overlay keep the child busy long enough
    job_id = _submit(stack, big, "big.jpg", tasks="explain")
    killed = None
    deadline = time.monotonic() + 120
    with stack.client() as client:
        while time.monotonic() < deadline and killed is None:
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job["stages"]["explain"]["status"] == "running":
                children = parent.children()
                assert children, "the explain worker has no child process"
                killed = children[0].pid
                os.kill(killed, signal.SIGKILL)
            time.sleep(0.02)
    assert killed is not None, "the explain stage never started"
    job = stack.wait_for_job(job_id, timeout=300)
    assert job["status"] == "succeeded", stack.tail_logs()
    assert job["stages"]["explain"]["attempts"] >= 2
    assert killed not in [c.pid for c in parent.children()]
    assert _decode(stack, job["results"]["explanation"]["overlay_url"]).size == (1280, 960)


def test_metrics_count_finished_jobs_and_stage_latency(stack: Stack) -> None:
    stack.wait_for_job(_submit(stack, images.jpeg(), "m.jpg", model="fast", tasks="classify"))
    with stack.client() as client:
        text = client.get("/metrics").text
    finished = [line for line in text.splitlines() if line.startswith('damagelens_jobs_finished_total{status="succeeded"}')]
    assert finished and float(finished[0].split()[-1]) >= 1
    count = [line for line in text.splitlines() if line.startswith('damagelens_stage_seconds_count{stage="classify"}')]
    assert count and float(count[0].split()[-1]) >= 1
