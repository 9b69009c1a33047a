"""Installing trained weights over an ensemble: the name moves to the new model, the ensemble stays loadable by version."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from damagelens.registry import load_registry
from damagelens.registry.entries import RegistryError
from damagelens.registry.weights import sha256_file
from damagelens.training.install import install_ensemble, install_weights


def _classifier(name: str, weights: Path) -> dict:
    return {
        "name": name,
        "task": "classify",
        "architecture": "lite_single",
        "version": "3.0.0",
        "labels": ["a", "b"],
        "input_size": 64,
        "weights": f"weights/{weights.name}",
        "sha256": sha256_file(weights),
    }


def test_new_weights_take_over_an_ensembles_name_and_keep_it_as_the_previous_version(tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    member = tmp_path / "weights" / "m.safetensors"
    member.write_bytes(b"member")
    ensemble = {
        "name": "accurate",
        "aliases": ["fusion"],
        "task": "classify",
        "architecture": "mean_ensemble",
        "version": "4.0.0",
        "labels": ["a", "b"],
        "input_size": 64,
        "members": ["m"],
        "temperature": 0.8,
    }
    registry_path = tmp_path / "registry.yaml"
    registry_path.write_text(yaml.safe_dump({"models": [_classifier("m", member), ensemble]}))
    trained = tmp_path / "accurate-v5.safetensors"
    trained.write_bytes(b"trained")

    install_weights(registry_path, "accurate", trained, {"version": "5.0.0", "architecture": "lite_fusion", "input_size": 64})

    registry = load_registry(registry_path)
    current, previous = registry.get("fusion"), registry.get("accurate-v4")
    assert (current.name, current.version, current.architecture, current.members) == ("accurate", "5.0.0", "lite_fusion", ())
    assert current.temperature == 1.0  # the ensemble's calibration does not carry over to other weights
    assert (previous.architecture, [m.name for m in previous.member_entries], previous.temperature) == ("mean_ensemble", ["m"], 0.8)


def test_an_ensemble_is_installed_from_registered_members_and_its_previous_major_stays_loadable(tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    members = []
    for name in ("a", "b"):
        weights = tmp_path / "weights" / f"{name}.safetensors"
        weights.write_bytes(name.encode())
        members.append({**_classifier(name, weights), "cam_target_layer": "backbone.bn2", "mean": [0.5] * 3, "std": [0.5] * 3})
    registry_path = tmp_path / "registry.yaml"
    registry_path.write_text(yaml.safe_dump({"models": members}))
    calibrated = {"temperature": 0.76, "review_threshold": 0.84, "metrics": {"cv_accuracy": 0.77}}

    install_ensemble(registry_path, "accurate", ["a", "b"], "6.0.0", {**calibrated, "description": "mean of a and b"})
    install_ensemble(registry_path, "accurate", ["b", "a"], "7.0.0", {"temperature": 0.9, "review_threshold": 0.8})

    registry = load_registry(registry_path)
    current, previous = registry.get("accurate"), registry.get("accurate-v6")
    assert [m.name for m in current.member_entries] == ["b", "a"] and previous.members == ("a", "b")
    assert (current.architecture, current.weights, current.input_size) == ("mean_ensemble", None, 64)
    assert current.cam_target_layer == "members.0.backbone.bn2"
    assert (current.temperature, current.review_threshold, current.description) == (0.9, 0.8, "")
    assert (previous.temperature, previous.metrics["cv_accuracy"], previous.description) == (0.76, 0.77, "mean of a and b")


def test_an_ensemble_of_unregistered_members_is_refused(tmp_path: Path) -> None:
    registry_path = tmp_path / "registry.yaml"
    registry_path.write_text(yaml.safe_dump({"models": []}))
    with pytest.raises(ValueError, match="not in the registry"):
        install_ensemble(registry_path, "accurate", ["nope"], "1.0.0", {})
    assert yaml.safe_load(registry_path.read_text()) == {"models": []}


def test_an_ensemble_the_registry_would_refuse_is_not_written(tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    small, large = (tmp_path / "weights" / f"{n}.safetensors" for n in ("small", "large"))
    small.write_bytes(b"s")
    large.write_bytes(b"l")
    registry_path = tmp_path / "registry.yaml"
    models = [_classifier("small", small), {**_classifier("large", large), "input_size": 96}]
    registry_path.write_text(yaml.safe_dump({"models": models}))
    before = registry_path.read_text()
    with pytest.raises(RegistryError, match="large"):  # the first member sets the ensemble's input size: 64 < 96
        install_ensemble(registry_path, "accurate", ["small", "large"], "1.0.0", {})
    assert registry_path.read_text() == before
