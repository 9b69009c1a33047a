"""The detect and assess stages on a working-size copy of a big photo answer as on the full photo, in its pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from damagelens.imaging import load_upright_rgb
from damagelens.schemas import Stage, StageTask
from damagelens.settings import get_settings
from damagelens_worker.stages.assess import assess, assess_batch
from damagelens_worker.stages.detect import detect, detect_batch

pytestmark = pytest.mark.slow
MAX_PIXELS = 40_000_000


@pytest.fixture(scope="module")
def big_photo() -> bytes:
    """A real damaged-car photo (800×600) upscaled to a phone's 3200×2400, as a JPEG."""
    photos = sorted((get_settings().data_dir / "detection" / "seed-yolo" / "images").glob("*.jpg"))
    if len(photos) < 2:
        pytest.skip("no seed-yolo photos under the data dir (see ../shared/data/README.md)")
    buf = io.BytesIO()
    Image.open(photos[1]).convert("RGB").resize((3200, 2400), Image.Resampling.LANCZOS).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def _iou(a: list[float], b: list[float]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h)


def _same_regions(full: list[dict], capped: list[dict], threshold: float) -> None:
    """Every region of the full-size run clear of the threshold (by 0.05) is found again in the same place (IoU ≥ 0.8);
    boxes nearer the threshold may come and go with the slightly different resampling of the input."""
    checked = [r for r in full if r["confidence"] >= threshold + 0.05]
    assert checked, "the photo should give this detector confident regions"
    for region in checked:
        assert max((_iou(region["box"], other["box"]) for other in capped), default=0.0) >= 0.8, region


def test_detect_on_the_working_size_copy_reports_original_pixels(big_photo: bytes) -> None:
    payload = StageTask(job_id="j", stage=Stage.detect, model="fast", input_key="k")
    full = detect(payload, load_upright_rgb(big_photo, MAX_PIXELS))
    capped_image = load_upright_rgb(big_photo, MAX_PIXELS, max_side=1280)
    capped = detect(payload, capped_image)
    assert (capped.result["image_width"], capped.result["image_height"]) == (3200, 2400)
    _same_regions(full.result["detections"], capped.result["detections"], get_settings().detect_conf)
    for det in capped.result["detections"]:
        assert det["box_normalized"] == pytest.approx([v / s for v, s in zip(det["box"], (3200, 2400, 3200, 2400), strict=True)], abs=1e-4)
    picture = Image.open(io.BytesIO(capped.artifacts["detection.jpg"][0]))
    assert picture.size == capped_image.size == (800, 600)  # drawn on the working copy (1/2 by the decoder, then reduce(2))


def test_assess_on_the_working_size_copy_reports_original_pixels(big_photo: bytes) -> None:
    payload = StageTask(job_id="j", stage=Stage.assess, model="fast", input_key="k")
    full = assess(payload, load_upright_rgb(big_photo, MAX_PIXELS))
    capped = assess(payload, load_upright_rgb(big_photo, MAX_PIXELS, max_side=1280))
    assert (capped.result["image_width"], capped.result["image_height"]) == (3200, 2400)
    assert capped.result["severity"]["label"] == full.result["severity"]["label"]
    assert abs(capped.result["severity"]["confidence"] - full.result["severity"]["confidence"]) < 0.1
    _same_regions(full.result["damages"], capped.result["damages"], get_settings().assess_conf)
    boxes = np.array([d["box"] for d in capped.result["damages"]]).reshape(-1, 4)
    assert (boxes[:, 2] <= 3200).all() and (boxes[:, 3] <= 2400).all()
    assert Image.open(io.BytesIO(capped.artifacts["assessment.jpg"][0])).size == (800, 600)


@pytest.mark.parametrize(
    ("stage", "single", "batch", "regions"),
    [(Stage.detect, detect, detect_batch, "detections"), (Stage.assess, assess, assess_batch, "damages")],
)
def test_the_batched_path_answers_in_original_pixels_like_the_single_one(big_photo: bytes, stage, single, batch, regions: str) -> None:
    """A micro-batching worker (DAMAGELENS_BATCH_SIZE > 1) stores what the plain task stores, in the photo's pixels.
    A batch is letterboxed to one shape, so confidences move a little: the regions are compared by place (IoU ≥ 0.5;
    boxes left at the working size would overlap their full-size selves by less than 0.1); regions within 0.05 of the
    confidence threshold may come and go, as in `_same_regions`."""
    threshold = get_settings().detect_conf if stage == Stage.detect else get_settings().assess_conf
    payload = StageTask(job_id="j", stage=stage, model="fast", input_key="k")
    image = load_upright_rgb(big_photo, MAX_PIXELS, max_side=1280)
    one = single(payload, image).result
    assert one[regions]
    for batched in (out.result for out in batch([(payload, image), (payload, image)])):
        assert (batched["image_width"], batched["image_height"]) == (3200, 2400)
        assert batched[regions]
        for region in (r for r in batched[regions] if r["confidence"] >= threshold + 0.05):
            assert max(_iou(region["box"], other["box"]) for other in one[regions]) >= 0.5, region
            assert region["box_normalized"] == pytest.approx(
                [v / s for v, s in zip(region["box"], (3200, 2400, 3200, 2400), strict=True)], abs=1e-4
            )
