"""The assess stage's models: severity (holdout trainer, evaluate severity, ONNX parity) and the typed
detector (lensor conversion, evaluate detect --agnostic). Real-data checks skip when ../shared/data is absent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from damagelens.registry import ModelEntry, load_registry
from damagelens.registry.weights import resolve_weights
from damagelens.settings import Settings
from damagelens.training.damage_types import DAMAGE_TYPES, SEVERITIES, build_typed_dataset, lensor_typed_items
from damagelens.training.data import scan_image_folder, scan_yolo_dataset
from tests.training.conftest import make_image

SEVERITY_LABELS = ("minor", "moderate", "severe")


def _app():
    import typer

    from damagelens.cli import models

    app = typer.Typer()
    models.register(app)
    return app


def _shipped(name: str) -> ModelEntry:
    registry = load_registry(Settings().registry_path)
    if name not in registry.names():
        pytest.skip(f"registry has no {name!r} entry yet")
    return registry.get(name)


def _data_or_skip(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(f"real data not available: {path} is absent (set DAMAGELENS_DATA_DIR)")
    return path


def _link_subset(src: Path, dst: Path, per_class: int) -> Path:
    for label in SEVERITY_LABELS:
        (dst / label).mkdir(parents=True)
        for photo in sorted((src / label).glob("*.jpg"))[:per_class]:
            (dst / label / photo.name).symlink_to(photo)
    return dst


# ---------------------------------------------------------------- severity


def test_shipped_assess_models_are_registered_with_checked_small_weights() -> None:
    severity, typed = _shipped("severity"), _shipped("damage-types")
    assert severity.task == "severity" and severity.labels == SEVERITY_LABELS and severity.trained
    assert typed.task == "detect" and typed.labels == DAMAGE_TYPES and typed.trained
    for entry in (severity, typed):
        path = resolve_weights(entry)  # sha256 checked
        assert path is not None and path.stat().st_size <= 25 * 1024 * 1024
    from safetensors.torch import load_file

    state = load_file(str(resolve_weights(severity)))
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())


@pytest.mark.slow
def test_holdout_fit_trains_on_train_and_scores_val(tmp_path: Path) -> None:
    """The cached-tail trainer over a 3-label set: early stopping on the given val split, val metrics."""
    from damagelens.training.classify import TrainConfig, holdout_fit
    from damagelens.training.presets import SEVERITY_PRESETS, preset_entry

    for split, n in (("train", 4), ("val", 2)):
        for c, label in enumerate(SEVERITY_LABELS):
            for i in range(n):
                make_image(tmp_path / split / label / f"{label}_{i}.jpg", seed=1000 * c + 10 * i + len(split), tint=c)
    train, _ = scan_image_folder(tmp_path / "train", SEVERITY_LABELS)
    val, _ = scan_image_folder(tmp_path / "val", SEVERITY_LABELS)
    entry = preset_entry("severity", SEVERITY_PRESETS["severity"]).model_copy(update={"input_size": 64})
    cfg = TrainConfig(epochs=3, n_aug=1, batch_size=4, warmup_epochs=0.5, patience=2)
    model, res, metrics = holdout_fit(entry, train, val, cfg, cache_dir=tmp_path / "cache", out_dir=tmp_path / "fit", pretrained=False)
    assert metrics["n"] == 6 and metrics["labels"] == list(SEVERITY_LABELS)
    assert np.asarray(metrics["confusion"]).shape == (3, 3) and np.asarray(metrics["confusion"]).sum() == 6
    assert "view_accuracy" not in metrics  # the 6-class marginals do not apply to severity
    assert 1 <= metrics["best_epoch"] <= 3 and all("monitor_loss" in row for row in res.history)
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 3)


@pytest.mark.slow
def test_evaluate_severity_json_on_real_val_photos(tmp_path: Path) -> None:
    _shipped("severity")
    val = _data_or_skip(Settings().data_dir / "damage-severity" / "val")
    folder = _link_subset(val, tmp_path / "sev", per_class=10)
    result = CliRunner().invoke(_app(), ["evaluate", "severity", "--data", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["model"] == "severity" and out["n"] == 30 and out["labels"] == list(SEVERITY_LABELS)
    cm = np.asarray(out["confusion"])
    assert cm.shape == (3, 3) and cm.sum() == 30
    assert out["accuracy"] == pytest.approx(np.trace(cm) / 30, abs=1e-4)
    assert out["accuracy"] >= 0.45  # far above chance (1/3) on real photos: the shipped weights are trained


def test_evaluate_severity_rejects_a_classifier_name(tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["evaluate", "severity", "--data", str(tmp_path), "--model", "fast", "--json"])
    assert result.exit_code != 0


@pytest.mark.slow
def test_severity_onnx_parity(tmp_path: Path) -> None:
    from damagelens.training.export import export_onnx, onnx_parity
    from damagelens.vision.loading import load_classifier

    entry = _shipped("severity")
    model = load_classifier(entry, torch.device("cpu"), half=False)
    path = export_onnx(model, entry, tmp_path / "severity.onnx")
    assert onnx_parity(model, path, entry, n=2) < 1e-3


# ---------------------------------------------------------------- typed detector


def test_lensor_boxes_keep_type_and_severity() -> None:
    root = _data_or_skip(Settings().data_dir / "detection" / "lensor")
    items, severities = lensor_typed_items(root, "test")
    assert len(items) == 76 and sum(len(it.boxes) for it in items) == 159
    assert all(len(it.classes) == len(it.boxes) == len(s) for it, s in zip(items, severities, strict=True))
    types = {DAMAGE_TYPES[c] for it in items for c in it.classes}
    assert types == set(DAMAGE_TYPES)
    assert {SEVERITIES[s] for sev in severities for s in sev} == set(SEVERITIES)
    assert all(0 < v <= 1 for it in items for box in it.boxes for v in box[2:])


def test_typed_and_agnostic_views_write_class_ids(tmp_path: Path) -> None:
    root = _data_or_skip(Settings().data_dir / "detection" / "lensor")
    typed = build_typed_dataset(root, tmp_path / "typed")
    assert "  2: broken" in typed.read_text()
    ids = {line.split()[0] for f in (tmp_path / "typed" / "labels" / "test").glob("*.txt") for line in f.read_text().splitlines()}
    assert ids == {"0", "1", "2"}
    build_typed_dataset(root, tmp_path / "agnostic", agnostic=True)
    items, report = scan_yolo_dataset(tmp_path / "agnostic")
    assert report["bad_lines"] == 0 and len(items) == 967 + 144 + 76
    ids = {line.split()[0] for f in (tmp_path / "agnostic" / "labels").rglob("*.txt") for line in f.read_text().splitlines()}
    assert ids == {"0"}


@pytest.fixture(scope="module")
def lensor_test_one_class(tmp_path_factory) -> Path:
    """lensor's test split as a one-class YOLO folder (images/, labels/), like detection/seed-yolo."""
    root = _data_or_skip(Settings().data_dir / "detection" / "lensor")
    work = tmp_path_factory.mktemp("lensor-agnostic")
    build_typed_dataset(root, work / "all", agnostic=True)
    folder = work / "test"
    for sub in ("images", "labels"):
        (folder / sub).mkdir(parents=True)
        for f in sorted((work / "all" / sub / "test").iterdir())[:12]:
            target = f.resolve() if sub == "images" else f
            (folder / sub / f.name).symlink_to(target)
    (folder / "data.yaml").write_text("path: .\ntrain: images\nval: images\nnames:\n  0: damage\n")
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("model", ["detector", "damage-types"])
def test_evaluate_detect_agnostic_json(model: str, lensor_test_one_class: Path) -> None:
    _shipped(model)
    args = ["evaluate", "detect", "--data", str(lensor_test_one_class), "--model", model, "--agnostic", "--json"]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["model"] == model and out["agnostic"] is True and out["n_images"] == 12
    assert 0 <= out["map50_95"] <= out["map50"] <= 1
    if model == "damage-types":
        assert out["map50"] > 0.05  # trained on lensor: it finds lensor damage


def test_evaluate_detect_needs_agnostic_for_a_typed_model(tmp_path: Path) -> None:
    _shipped("damage-types")
    result = CliRunner().invoke(_app(), ["evaluate", "detect", "--data", str(tmp_path), "--model", "damage-types", "--json"])
    assert result.exit_code != 0 and "--agnostic" in result.output
