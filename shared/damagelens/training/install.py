"""Put trained weights into the registry folder and update the registry entry (sha256, metrics, version)."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import yaml

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
    tmp = registry_path.with_suffix(".yaml.part")
    tmp.write_text(HEADER + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120))
    tmp.replace(registry_path)
    from damagelens.registry.entries import load_registry

    load_registry.cache_clear()
    return entry


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
