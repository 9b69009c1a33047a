"""The severity models behind `OnnxModule` (assess stage, ONNX Runtime backend; the photo's and the regions')
score a batch as torch does."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from damagelens.registry import load_registry
from damagelens.settings import get_settings
from damagelens.vision.loading import load_classifier, model_dtype
from damagelens.vision.onnx_backend import OnnxClassifier, ensure_onnx
from damagelens.vision.onnx_module import OnnxModule
from damagelens.vision.preprocess import normalise, square_resize

TOLERANCE = 1e-4  # FP32 on both sides
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("setting", ["severity_model", "region_severity_model"])
def test_severity_batch_matches_torch(tmp_path, setting: str) -> None:
    settings = get_settings()
    entry = load_registry(settings.registry_path).get(getattr(settings, setting), task="severity")
    model = load_classifier(entry, torch.device("cpu"), half=False)
    wrapped = OnnxModule(OnnxClassifier(entry, ensure_onnx(entry, tmp_path), "cpu", threads=1))
    assert next(wrapped.parameters()).device.type == "cpu" and model_dtype(wrapped) == torch.float32
    rng = np.random.default_rng(1)
    photos = sorted((settings.data_dir / "damage-severity" / "val").rglob("*.jpg"))[:4]
    images = [Image.open(p).convert("RGB") for p in photos] or [Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8))]
    crops = images + [im.crop((0, 0, im.width // 2, im.height // 2)) for im in images]  # a photo and its region crops, as assess does
    batch = torch.stack([normalise(square_resize(c, entry.input_size), entry.mean, entry.std) for c in crops])
    with torch.inference_mode():
        expected = torch.softmax(model(batch), dim=1)
        got = torch.softmax(wrapped(batch), dim=1)
    diff = float((expected - got).abs().max())
    print(f"\n{entry.name}, batch of {len(crops)}: max |p_torch - p_ort| {diff:.2e}")
    assert got.shape == expected.shape == (len(crops), len(entry.labels))
    assert diff <= TOLERANCE
