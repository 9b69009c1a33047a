"""Installing trained weights over an ensemble: the name moves to the new model, the ensemble stays loadable by version."""

from __future__ import annotations

from pathlib import Path

import yaml

from damagelens.registry import load_registry
from damagelens.registry.weights import sha256_file
from damagelens.training.install import install_weights


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
