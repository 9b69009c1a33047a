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


@pytest.fixture
def fresh_detectors(fresh_cache: Path):
    model_cache.detector.cache_clear()
    model_cache.assessor.cache_clear()
    yield fresh_cache
    model_cache.detector.cache_clear()
    model_cache.assessor.cache_clear()


@pytest.mark.slow
def test_detect_and_assess_follow_the_backend_and_warm_up_exports_their_graphs(fresh_detectors: Path, monkeypatch) -> None:
    from damagelens.vision.detector import Detector
    from damagelens.vision.onnx_backend import onnx_path_for
    from damagelens.vision.onnx_detector import OnnxDetector
    from damagelens.vision.onnx_module import OnnxModule

    photos = sorted((get_settings().data_dir / "detection" / "seed-yolo" / "images").glob("*.jpg"))
    if not photos:
        pytest.skip("no seed-yolo photos under the data dir (see ../shared/data/README.md)")
    photo = Image.open(photos[1]).convert("RGB")
    monkeypatch.setenv("DAMAGELENS_INFERENCE_BACKEND", "onnxruntime")
    get_settings.cache_clear()
    model_cache.warm_up("detect")
    model_cache.warm_up("assess")  # the worker's start: both YOLO graphs and both severity graphs exported before the first job
    settings = get_settings()
    names = (settings.detector_model, settings.damage_types_model, settings.severity_model, settings.region_severity_model)
    assert settings.severity_model != settings.region_severity_model
    expected = {onnx_path_for(model_cache.registry().get(n), fresh_detectors).name for n in names}
    assert {p.name for p in (fresh_detectors / "onnx").glob("*.onnx")} == expected
    assert isinstance(model_cache.detector(), OnnxDetector) and isinstance(model_cache.assessor().detector, OnnxDetector)
    assert isinstance(model_cache.assessor().severity_model, OnnxModule) and isinstance(model_cache.assessor().region_model, OnnxModule)
    by_onnx, _ = model_cache.detector()(photo)
    assessed_onnx, _ = model_cache.assessor()(photo, "")

    monkeypatch.setenv("DAMAGELENS_INFERENCE_BACKEND", "torch")
    get_settings.cache_clear()
    model_cache.detector.cache_clear()
    model_cache.assessor.cache_clear()
    assert isinstance(model_cache.detector(), Detector)
    by_torch, _ = model_cache.detector()(photo)
    assessed_torch, _ = model_cache.assessor()(photo, "")
    assert assessed_onnx.severity.label == assessed_torch.severity.label
    assert assessed_onnx.severity.confidence == pytest.approx(assessed_torch.severity.confidence, abs=1e-3)
    assert [d.severity for d in assessed_onnx.damages] == [d.severity for d in assessed_torch.damages]  # the region model, both backends
    assert assessed_onnx.region_model == assessed_torch.region_model == settings.region_severity_model
    assert by_torch and [d.label for d in by_onnx] == [d.label for d in by_torch]
    assert np.abs(np.array([d.box for d in by_onnx]) - np.array([d.box for d in by_torch])).max() <= 1.0


def test_assess_worker_loads_a_region_model_and_warms_up_both_unless_it_is_the_photo_model(fresh_detectors: Path, monkeypatch) -> None:
    """Default: `severity` on the photo, `severity-v1` on the region crops, two models and warm-up runs
    both; naming the photo's model for the regions loads it once and keeps one batch."""
    monkeypatch.setenv("DAMAGELENS_INFERENCE_BACKEND", "torch")
    monkeypatch.delenv("DAMAGELENS_SEVERITY_MODEL", raising=False)
    monkeypatch.delenv("DAMAGELENS_REGION_SEVERITY_MODEL", raising=False)
    get_settings.cache_clear()
    assessor = model_cache.assessor()
    assert (assessor.severity_entry.name, assessor.region_entry.name) == ("severity", "severity-v1")
    assert assessor.region_model is not assessor.severity_model and not assessor.one_batch
    ran: list[str] = []
    hooks = [
        model.register_forward_hook(lambda *_, name=name: ran.append(name))
        for name, model in (("photo", assessor.severity_model), ("region", assessor.region_model))
    ]
    try:
        model_cache.warm_up("assess")  # a blank photo: no regions, yet the region model runs too
    finally:
        for hook in hooks:
            hook.remove()
    assert sorted(ran) == ["photo", "region"]

    monkeypatch.setenv("DAMAGELENS_REGION_SEVERITY_MODEL", "severity")
    get_settings.cache_clear()
    model_cache.assessor.cache_clear()
    single = model_cache.assessor()
    assert single.one_batch and single.region_model is single.severity_model and single.region_entry.name == "severity"


def test_served_classifiers_are_what_clients_reach(monkeypatch) -> None:
    """Warm-up (classify and explain) covers the default and every aliased current version, by real name."""
    monkeypatch.setenv("DAMAGELENS_DEFAULT_MODEL", "resnet")  # an alias of `fast`
    get_settings.cache_clear()
    served = model_cache.served_classifiers()
    assert served[0] == "fast" and "accurate" in served
    assert not {"fast-v1", "fast-v2", "accurate-v1", "accurate-v2"} & set(served)  # kept versions load on demand
    get_settings.cache_clear()
