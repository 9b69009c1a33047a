"""YOLO on ONNX Runtime vs torch: same boxes on the same photos (max abs differences printed and bounded).

Both registry detectors (`detector` at 640 px, `damage-types` at 416 px) at the service's thresholds.
Boxes are compared unrounded, in original-image pixels, matched one-to-one by IoU. A box whose
confidence lies within BORDERLINE of the threshold in either backend may exist in one and not the
other (a 1e-5 difference can push it across); every other box must be found by both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from damagelens.registry import ModelEntry, load_registry
from damagelens.settings import get_settings
from damagelens.vision.detector import Detector
from damagelens.vision.onnx_backend import onnx_path_for
from damagelens.vision.onnx_detector import OnnxDetector, detections_from_boxes, ensure_detector_onnx

BOX_TOLERANCE_PX = 1.0  # measured: ~1e-3 px (FP32 on both sides, same letterbox and NMS)
CONF_TOLERANCE = 1e-3  # measured: ~1e-6
BORDERLINE = 0.01  # confidences this close to the threshold may fall either side of it
MODELS = {"detector": ("detect_conf", "detect_imgsz"), "damage-types": ("assess_conf", "assess_imgsz")}

pytestmark = pytest.mark.slow


def _photos() -> list[Image.Image]:
    root = get_settings().data_dir / "detection"
    files = sorted((root / "seed-yolo" / "images").glob("*.jpg"))[:5] + sorted((root / "lensor" / "images" / "test").glob("*.jpg"))[:5]
    if not files:
        pytest.skip(f"no detection photos under {root} (see ../shared/data/README.md)")
    photos = [Image.open(f).convert("RGB") for f in files]
    # other sizes and shapes than the datasets' 800×600 / 640×640: upscaled, tall, tiny
    photos += [photos[0].resize((2400, 1800)), photos[5].resize((480, 1100)), photos[1].resize((200, 150))]
    return photos


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> dict[str, tuple[ModelEntry, Detector, OnnxDetector]]:
    torch.set_num_threads(1)
    cache = tmp_path_factory.mktemp("onnx-cache")
    settings = get_settings()
    registry = load_registry(settings.registry_path)
    out = {}
    for name, (conf_field, size_field) in MODELS.items():
        entry = registry.get(name, task="detect")
        conf, imgsz = getattr(settings, conf_field), getattr(settings, size_field)
        path = ensure_detector_onnx(entry, cache)
        out[name] = (entry, Detector(entry, conf=conf, imgsz=imgsz), OnnxDetector(entry, path, conf=conf, imgsz=imgsz, threads=1))
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter + 1e-9)


def _compare(torch_rows: np.ndarray, ort_rows: np.ndarray, threshold: float) -> tuple[float, float, int, int]:
    """Match each torch box to the unused ORT box of the same class with the highest IoU (≥ 0.9).

    Returns (max box diff px, max confidence diff, matched, unmatched non-borderline boxes)."""
    used: set[int] = set()
    box_diff = conf_diff = 0.0
    matched = unmatched = 0
    for row in torch_rows:
        best, best_iou = None, 0.9
        for j, other in enumerate(ort_rows):
            if j not in used and other[5] == row[5] and (iou := _iou(row[:4], other[:4])) >= best_iou:
                best, best_iou = j, iou
        if best is None:
            unmatched += abs(row[4] - threshold) > BORDERLINE
            continue
        used.add(best)
        matched += 1
        box_diff = max(box_diff, float(np.abs(row[:4] - ort_rows[best][:4]).max()))
        conf_diff = max(conf_diff, abs(float(row[4] - ort_rows[best][4])))
    unmatched += sum(abs(ort_rows[j][4] - threshold) > BORDERLINE for j in range(len(ort_rows)) if j not in used)
    return box_diff, conf_diff, matched, unmatched


@pytest.mark.parametrize("name", list(MODELS))
def test_onnx_boxes_match_torch_on_real_photos(pairs, name: str) -> None:
    _, by_torch, by_ort = pairs[name]
    box_diff = conf_diff = 0.0
    matched = unmatched = 0
    for image in _photos():
        boxes = by_torch.model.predict(image, conf=by_torch.conf, imgsz=by_torch.imgsz, device="cpu", verbose=False)[0].boxes
        torch_rows = torch.cat([boxes.xyxy, boxes.conf[:, None], boxes.cls[:, None]], dim=1).numpy()
        ort_rows = by_ort.predict(image).numpy()
        b, c, m, u = _compare(torch_rows, ort_rows, by_ort.conf)
        box_diff, conf_diff, matched, unmatched = max(box_diff, b), max(conf_diff, c), matched + m, unmatched + u
    print(f"\n{name}: {matched} boxes matched; max |box torch - ort| {box_diff:.2e} px, max |conf torch - ort| {conf_diff:.2e}")
    assert matched > 0, "the photos should give this detector something to find"
    assert unmatched == 0, f"{unmatched} non-borderline boxes found by one backend only"
    assert box_diff <= BOX_TOLERANCE_PX
    assert conf_diff <= CONF_TOLERANCE


def test_service_detections_agree(pairs) -> None:
    """What the stage stores (rounded `Detection`s, best first) is the same from both backends."""
    _, by_torch, by_ort = pairs["detector"]
    for image in _photos()[:5]:
        a, _ = by_torch(image)
        b, speed = by_ort(image)
        assert [d.label for d in a] == [d.label for d in b]
        for x, y in zip(a, b, strict=True):
            assert np.abs(np.subtract(x.box, y.box)).max() <= BOX_TOLERANCE_PX
            assert abs(x.confidence - y.confidence) <= CONF_TOLERANCE
        assert {"preprocess", "inference", "postprocess"} <= speed.keys()


def test_export_is_cached_per_weight_sha(pairs, tmp_path: Path) -> None:
    entry, _, _ = pairs["detector"]
    path = ensure_detector_onnx(entry, tmp_path)
    assert path == onnx_path_for(entry, tmp_path) and entry.sha256[:16] in path.name
    stamp = path.stat().st_mtime_ns
    assert ensure_detector_onnx(entry, tmp_path).stat().st_mtime_ns == stamp  # not exported again
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary export folder left behind
    changed = entry.model_copy(update={"sha256": "0" * 64})
    assert onnx_path_for(changed, tmp_path) != path


def test_blank_image_finds_nothing_and_boxes_are_clipped(pairs) -> None:
    _, _, by_ort = pairs["detector"]
    detections, _ = by_ort(Image.new("RGB", (320, 240), (128, 128, 128)))
    assert detections == []
    clipped = detections_from_boxes([[-5.0, 10.0, 900.0, 50.0]], [0.5], [0.0], (800, 600), ("damage",))
    assert clipped[0].box == [0.0, 10.0, 800.0, 50.0] and clipped[0].box_normalized[2] == 1.0


@pytest.mark.parametrize("name", list(MODELS))
def test_a_batch_on_onnx_gives_the_boxes_of_a_torch_batch(pairs, name: str) -> None:
    """Micro-batching: one session run over photos of different shapes (square letterbox, as
    Ultralytics does for a list) finds the boxes the torch batch finds, photo by photo."""
    _, by_torch, by_ort = pairs[name]
    photos = _photos()[:6]
    torch_batch, _ = by_torch.detect_batch(photos)
    ort_batch, speed = by_ort.detect_batch(photos)
    matched = 0
    for a, b in zip(torch_batch, ort_batch, strict=True):
        rows_a = np.array([[*d.box, d.confidence, 0.0] for d in a]).reshape(-1, 6)
        rows_b = np.array([[*d.box, d.confidence, 0.0] for d in b]).reshape(-1, 6)
        box_diff, conf_diff, m, unmatched = _compare(rows_a, rows_b, by_ort.conf)
        matched += m
        assert unmatched == 0 and box_diff <= BOX_TOLERANCE_PX and conf_diff <= CONF_TOLERANCE
    print(f"\n{name} batch of {len(photos)}: {matched} boxes matched between torch and ONNX Runtime")
    assert matched > 0
    assert {"preprocess", "inference", "postprocess"} <= speed.keys()
    single, _ = by_ort.detect_batch(photos[:1])
    assert single == [by_ort(photos[0])[0]]  # a batch of one is the single call
