"""Put trained weights into the registry folder and update the registry entry (sha256, metrics, version)."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import yaml

from damagelens.registry.entries import ENSEMBLE, load_registry, parse_registry
from damagelens.registry.weights import sha256_file

HEADER = (
    "# The model registry: one entry per weight set. Paths are relative to this file.\n"
    "# `trained: false` marks weights that were not trained for this task (placeholders).\n"
)


def install_weights(registry_path: Path, name: str, weights: Path, updates: dict) -> dict:
    """Copy `weights` next to the registry (weights/<file>) and rewrite entry `name` (created if absent)."""
    registry_path = Path(registry_path)
    target = registry_path.parent / "weights" / Path(weights).name
    target.parent.mkdir(parents=True, exist_ok=True)
    if Path(weights).resolve() != target.resolve():
        shutil.copyfile(weights, target)
    data = yaml.safe_load(registry_path.read_text()) or {}
    models = data.setdefault("models", [])
    entry = next((m for m in models if m.get("name") == name), None)
    if entry is None:
        entry = {"name": name}
        models.append(entry)
    elif "version" in updates and _major(entry.get("version")) != _major(updates["version"]):
        keep_previous(models, entry)
        for stale in ("temperature", "review_threshold", "metrics"):
            entry.pop(stale, None)
    entry.pop("members", None)  # a weight file is one model: an ensemble taken over by it stops being one
    entry.update(updates)
    entry["weights"] = f"weights/{target.name}"
    entry["sha256"] = sha256_file(target)
    _write(registry_path, data)
    return entry


def install_ensemble(registry_path: Path, name: str, members: list[str], version: str, updates: dict) -> dict:
    """Write entry `name` as the mean of registered `members` (created if absent); the served input
    (size, normalisation, labels, Grad-CAM layer) is the first member's, as `mean_ensemble` expects.
    A new major version keeps the previous entry loadable as `<name>-v<major>`, like `install_weights`."""
    registry_path = Path(registry_path)
    data = yaml.safe_load(registry_path.read_text()) or {}
    models = data.setdefault("models", [])
    by_name = {m.get("name"): m for m in models} | {a: m for m in models for a in m.get("aliases", [])}
    missing = [m for m in members if m not in by_name]
    if missing or not members:
        raise ValueError(f"ensemble {name!r}: members not in the registry: {missing or 'none given'}")
    first = by_name[members[0]]
    entry = next((m for m in models if m.get("name") == name), None)
    if entry is None:
        entry = {"name": name}
        models.append(entry)
    elif _major(entry.get("version")) != _major(version):
        keep_previous(models, entry)
        entry.pop("description", None)  # it described the previous members
    for own in ("weights", "sha256", "options", "temperature", "review_threshold", "metrics"):
        entry.pop(own, None)  # an ensemble has no weights of its own; its calibration is fitted anew
    served_input = {k: copy.deepcopy(first[k]) for k in ("input_size", "mean", "std", "labels") if k in first}  # no YAML anchors
    if first.get("cam_target_layer"):
        served_input["cam_target_layer"] = f"members.0.{first['cam_target_layer']}"
    ensemble = {"task": "classify", "architecture": ENSEMBLE, "version": version, "members": list(members), "trained": True}
    entry.update({**ensemble, **served_input, **updates})
    parse_registry(data, registry_path.parent)  # an ensemble the registry would refuse (e.g. a member larger than the first) is not written
    _write(registry_path, data)
    return entry


def _write(registry_path: Path, data: dict) -> None:
    tmp = registry_path.with_suffix(".yaml.part")
    tmp.write_text(HEADER + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120))
    tmp.replace(registry_path)
    load_registry.cache_clear()


def _major(version: str | None) -> str:
    return str(version or "0").split(".")[0]


def keep_previous(models: list[dict], entry: dict) -> dict:
    """A new major version takes over the name and aliases; the previous weights stay loadable as
    `<name>-v<major>` (no aliases), placed right after the current entry."""
    old = copy.deepcopy({k: v for k, v in entry.items() if k != "aliases"})  # no shared lists: YAML would write anchors
    old["name"] = f"{entry['name']}-v{_major(entry.get('version'))}"
    aliases = [a for a in entry.get("aliases", []) if a != old["name"]]
    entry["aliases"] = aliases
    existing = next((m for m in models if m.get("name") == old["name"]), None)
    if existing is not None:
        existing.clear()
        existing.update(old)
        return existing
    models.insert(models.index(entry) + 1, old)
    return old
