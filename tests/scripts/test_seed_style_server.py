"""The benchmark's baseline (`scripts/seed_style_server.py`) is project code: it must really answer.

A real photo through a real uvicorn server: every analysis of the stack's default set comes back,
with its images inline and decodable, and bad input gets a clear error without breaking the server.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import math
import sys
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from PIL import Image

from damagelens.schemas import DEFAULT_STAGES, SEED_LABELS
from tests.support.servers import ThreadedApp

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "seed_style_server.py"


@pytest.fixture(scope="module")
def seed_style() -> ModuleType:
    spec = importlib.util.spec_from_file_location("seed_style_server", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the module's annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def server(seed_style: ModuleType) -> Iterator[str]:
    # Load the models first: ThreadedApp gives start-up 15 s, too little for a cold load on a busy VM.
    seed_style.warm_up(["fast"], DEFAULT_STAGES)
    with ThreadedApp(seed_style.create_app(["fast"])) as app:  # start-up warms every default model again (cached now)
        yield app.url


def decode_data_url(url: str, content_type: str) -> Image.Image:
    prefix = f"data:{content_type};base64,"
    assert url.startswith(prefix), url[:40]
    return Image.open(io.BytesIO(base64.b64decode(url[len(prefix) :])))


def test_one_real_photo_gets_every_default_result(server: str, real_photos: list[Path]) -> None:
    photo = real_photos[0]
    with Image.open(photo) as original:
        size = original.size
    response = httpx.post(
        f"{server}/predict", files={"image": (photo.name, photo.read_bytes(), "image/jpeg")}, data={"model": "fast"}, timeout=120
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["tasks"] == [stage.value for stage in DEFAULT_STAGES]
    results = answer["results"]

    classification = results["classification"]
    assert classification["label"] in SEED_LABELS and classification["model"] == "fast"
    assert math.isclose(sum(classification["probabilities"].values()), 1.0, abs_tol=1e-3)

    explanation = results["explanation"]
    assert explanation["target_label"] in SEED_LABELS
    overlay = decode_data_url(explanation["overlay_url"], "image/jpeg")
    heatmap = decode_data_url(explanation["heatmap_url"], "image/png")
    assert overlay.format == "JPEG" and heatmap.format == "PNG" and heatmap.mode == "L" and overlay.size == heatmap.size

    detection = results["detection"]
    assert (detection["image_width"], detection["image_height"]) == size
    assert detection["total_detections"] == len(detection["detections"])
    assert decode_data_url(detection["image_url"], "image/jpeg").size == size

    assessment = results["assessment"]
    assert assessment["severity"]["label"] in ("minor", "moderate", "severe")
    assert decode_data_url(assessment["image_url"], "image/jpeg").size == size

    # Per-stage timings with the workers' keys, so the benchmark can subtract compute the same way on both sides.
    assert set(answer["speed_ms"]) == {stage.value for stage in DEFAULT_STAGES}
    assert all(sum(ms.values()) > 0 for ms in answer["speed_ms"].values())
    assert answer["total_ms"] >= sum(v for ms in answer["speed_ms"].values() for k, v in ms.items() if not k.startswith("yolo_"))


def test_requests_are_served_one_at_a_time(server: str, real_photos: list[Path]) -> None:
    """The property that makes it the seed's way of serving: concurrent requests never overlap."""
    from concurrent.futures import ThreadPoolExecutor

    def post(photo: Path) -> dict:
        response = httpx.post(
            f"{server}/predict", files={"image": (photo.name, photo.read_bytes())}, data={"tasks": "classify,detect"}, timeout=120
        )
        assert response.status_code == 200, response.text
        return response.json()

    with ThreadPoolExecutor(max_workers=3) as pool:
        answers = list(pool.map(post, real_photos[:3]))
    spans = sorted(tuple(answer["handled"]) for answer in answers)
    assert all(begin < end for begin, end in spans)
    assert all(earlier[1] <= later[0] for earlier, later in pairwise(spans)), spans


def test_a_subset_of_tasks_runs_only_those(server: str, real_photos: list[Path]) -> None:
    photo = real_photos[1]
    response = httpx.post(
        f"{server}/predict", files={"file": (photo.name, photo.read_bytes())}, data={"tasks": "classify,detect"}, timeout=120
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results["classification"] and results["detection"]
    assert results["explanation"] is None and results["assessment"] is None


@pytest.mark.parametrize(
    ("files", "data", "status", "code"),
    [
        ({"image": ("x.jpg", b"not an image at all")}, {}, 415, "unsupported_media_type"),
        ({"image": ("x.jpg", b"")}, {}, 400, "empty_upload"),
        ({}, {}, 422, "missing_image"),
        ({"image": ("x.jpg", b"irrelevant")}, {"tasks": "classify,paint"}, 422, "invalid_tasks"),
    ],
)
def test_bad_input_gets_a_clear_error_and_the_server_keeps_serving(server: str, real_photos: list[Path], files, data, status, code) -> None:
    response = httpx.post(f"{server}/predict", files=files or None, data=data, timeout=60)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    photo = real_photos[2]
    ok = httpx.post(f"{server}/predict", files={"image": (photo.name, photo.read_bytes())}, data={"tasks": "classify"}, timeout=60)
    assert ok.status_code == 200 and ok.json()["results"]["classification"]["label"] in SEED_LABELS


def test_a_truncated_photo_is_refused(server: str, real_photos: list[Path]) -> None:
    data = real_photos[0].read_bytes()
    response = httpx.post(f"{server}/predict", files={"image": ("cut.jpg", data[: len(data) // 2])}, timeout=60)
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_image"


def test_an_unknown_model_is_a_404(server: str, real_photos: list[Path]) -> None:
    photo = real_photos[0]
    response = httpx.post(f"{server}/predict", files={"image": (photo.name, photo.read_bytes())}, data={"model": "nope"}, timeout=60)
    assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_model"
