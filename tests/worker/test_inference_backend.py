"""`DAMAGELENS_INFERENCE_BACKEND` picks the classify stage's forward pass; both backends serve the same answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from damagelens.settings import get_settings
from damagelens_worker import model_cache


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("DAMAGELENS_MODEL_CACHE_DIR", str(tmp_path))
    get_settings.cache_clear()
    model_cache.onnx_classifier.cache_clear()
    yield tmp_path
    model_cache.onnx_classifier.cache_clear()


def test_backends_agree_and_onnx_exports_into_the_model_cache(fresh_cache: Path, monkeypatch) -> None:
    image = Image.fromarray(np.random.default_rng(3).integers(0, 255, (240, 320, 3), dtype=np.uint8))
    monkeypatch.setenv("DAMAGELENS_INFERENCE_BACKEND", "torch")
    get_settings.cache_clear()
    by_torch, _ = model_cache.classify("fast", image)
    assert not (fresh_cache / "onnx").exists()  # the torch backend never exports

    monkeypatch.setenv("DAMAGELENS_INFERENCE_BACKEND", "onnxruntime")
    get_settings.cache_clear()
    by_onnx, _ = model_cache.classify("resnet", image)  # aliases resolve as for torch
    assert [p.name.split("-")[0] for p in (fresh_cache / "onnx").glob("*.onnx")] == ["fast"]
    assert by_onnx.label == by_torch.label and by_onnx.model == "fast"
    assert list(by_onnx.probabilities.values()) == pytest.approx(list(by_torch.probabilities.values()), abs=1e-4)


def test_unknown_backend_is_refused(monkeypatch) -> None:
    from pydantic import ValidationError

    from damagelens.settings import Settings

    monkeypatch.setenv("DAMAGELENS_INFERENCE_BACKEND", "tensorrt")
    with pytest.raises(ValidationError):
        Settings()
