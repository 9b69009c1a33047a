"""Every registered classifier builds, runs, and round-trips its weights; seed layouts load strictly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from damagelens.registry import ModelEntry, load_registry
from damagelens.registry.weights import sha256_file
from damagelens.schemas import SEED_LABELS
from damagelens.settings import Settings
from damagelens.vision.architectures import architecture_names, build_architecture
from damagelens.vision.architectures.seed import SeedFusionClassifier, SeedResNetClassifier
from damagelens.vision.loading import load_classifier

CLASSIFIERS = [e for e in load_registry(Settings().registry_path).list("classify")]


@pytest.mark.parametrize("entry", CLASSIFIERS, ids=lambda e: e.name)
def test_registry_classifier_forward(entry: ModelEntry) -> None:
    model = build_architecture(entry).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, entry.input_channels, entry.input_size, entry.input_size))
    assert logits.shape == (2, len(entry.labels))
    assert model.get_submodule(entry.cam_target_layer) is not None


@pytest.mark.parametrize("entry", CLASSIFIERS, ids=lambda e: e.name)
def test_registry_classifier_loads_its_shipped_weights(entry: ModelEntry) -> None:
    model = load_classifier(entry, torch.device("cpu"))
    assert not model.training
    assert next(model.parameters()).dtype == torch.float32  # FP16 files are widened on CPU


def _entry_for(arch: str, size: int, path: Path) -> ModelEntry:
    return ModelEntry(
        name=f"seed-{arch}",
        task="classify",
        architecture=arch,
        version="seed",
        labels=SEED_LABELS,
        input_size=size,
        weights=path.name,
        sha256=sha256_file(path),
        base_dir=path.parent,
    )


def test_seed_resnet_checkpoint_loads_strictly(tmp_path: Path) -> None:
    """A random-init model saved in the seed's layout (torch.save of the state dict) loads unchanged."""
    torch.manual_seed(1)
    original = SeedResNetClassifier().eval()
    keys = list(original.state_dict())
    assert keys[0] == "model.conv1.weight" and "model.fc.4.weight" in keys  # the seed's key names
    path = tmp_path / "car-damage-classifier.pt"
    torch.save(original.state_dict(), path)
    loaded = load_classifier(_entry_for("seed_resnet18", 128, path), torch.device("cpu"))
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        assert torch.allclose(original(x), loaded(x), atol=1e-6)


@pytest.mark.slow
def test_seed_fusion_fp16_checkpoint_loads_strictly(tmp_path: Path) -> None:
    torch.manual_seed(2)
    original = SeedFusionClassifier().eval()
    keys = list(original.state_dict())
    assert any(k.startswith("eff_features.") for k in keys) and any(k.startswith("cnx_backbone.") for k in keys)
    assert any(k.startswith("fusion_head.") for k in keys)
    path = tmp_path / "best_fusion_model_fp16.pt"
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in original.state_dict().items()}, path)
    loaded = load_classifier(_entry_for("seed_fusion", 260, path), torch.device("cpu"))
    x = torch.randn(1, 3, 260, 260)
    with torch.no_grad():
        assert torch.allclose(original(x).softmax(1), loaded(x).softmax(1), atol=2e-2)


def test_wrong_keys_fail_loudly(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file({"not.a.key": torch.zeros(1)}, str(path))
    with pytest.raises(RuntimeError, match="Missing key"):
        load_classifier(_entry_for("seed_resnet18", 128, path), torch.device("cpu"))


def test_unknown_architecture_is_an_error() -> None:
    entry = ModelEntry(name="x", task="classify", architecture="nope", version="1", labels=SEED_LABELS)
    with pytest.raises(ValueError, match="unknown architecture"):
        build_architecture(entry)
    assert {"seed_resnet18", "seed_fusion"} <= set(architecture_names())
