"""Registry entries (one frozen config per weight set, timm-style) and the name/alias lookup."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from damagelens.schemas import ModelPublic


class RegistryError(ValueError):
    """The registry file is malformed (duplicate names, bad fields)."""


class UnknownModelError(KeyError):
    def __init__(self, name: str, valid: list[str]):
        super().__init__(name)
        self.name = name
        self.valid = valid

    def __str__(self) -> str:
        return f"unknown model {self.name!r}; valid names: {', '.join(self.valid)}"


class ModelEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    name: str
    task: Literal["classify", "detect", "severity"] = Field(description="severity: photo-level minor/moderate/severe (the assess stage)")
    architecture: str = Field(description="key of a registered architecture builder (or `yolo`)")
    version: str
    weights: str | None = Field(None, description="path relative to the registry file, s3://bucket/key or hf://repo/file@rev")
    sha256: str | None = None
    aliases: tuple[str, ...] = ()
    input_size: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    labels: tuple[str, ...] = ()
    cam_target_layer: str | None = Field(None, description="dotted module path used by Grad-CAM")
    trained: bool = Field(True, description="false while the head is untrained (ImageNet backbone only)")
    metrics: dict[str, float] = Field(default_factory=dict)
    description: str = ""
    options: dict[str, Any] = Field(default_factory=dict, description="architecture keyword arguments")
    temperature: float = Field(1.0, gt=0, description="probabilities = softmax(logits / temperature); fit on out-of-fold logits")
    review_threshold: float | None = Field(None, ge=0, le=1, description="calibrated confidence below which a result needs review")
    base_dir: Path | None = Field(None, exclude=True, description="where relative weight paths start")

    @model_validator(mode="after")
    def _check(self) -> ModelEntry:
        if self.task in ("classify", "severity") and not self.labels:
            raise ValueError(f"classifier {self.name!r} needs labels")
        if self.weights is not None and self.sha256 is None:
            raise ValueError(f"weights of {self.name!r} need a sha256 (checked on every load)")
        return self

    def public(self) -> ModelPublic:
        return ModelPublic(
            name=self.name,
            aliases=list(self.aliases),
            task=self.task,
            architecture=self.architecture,
            version=self.version,
            trained=self.trained,
            metrics=self.metrics,
            input_size=self.input_size,
            labels=list(self.labels),
            description=self.description,
            temperature=self.temperature,
            review_threshold=self.review_threshold,
        )


class Registry:
    """Immutable lookup over entries; unknown or duplicate names are hard errors."""

    def __init__(self, entries: list[ModelEntry]):
        self._entries: dict[str, ModelEntry] = {}
        self._aliases: dict[str, str] = {}
        for entry in entries:
            for key in (entry.name, *entry.aliases):
                if key in self._entries or key in self._aliases:
                    raise RegistryError(f"duplicate model name or alias {key!r}")
            self._entries[entry.name] = entry
            for alias in entry.aliases:
                self._aliases[alias] = entry.name

    def get(self, name: str, task: str | None = None) -> ModelEntry:
        canonical = self._aliases.get(name, name)
        entry = self._entries.get(canonical)
        if entry is None or (task is not None and entry.task != task):
            raise UnknownModelError(name, self.names(task))
        return entry

    def names(self, task: str | None = None) -> list[str]:
        out: list[str] = []
        for entry in self._entries.values():
            if task is None or entry.task == task:
                out += [entry.name, *entry.aliases]
        return out

    def list(self, task: str | None = None) -> list[ModelEntry]:
        return [e for e in self._entries.values() if task is None or e.task == task]


def parse_registry(data: dict[str, Any], base_dir: Path) -> Registry:
    try:
        entries = [ModelEntry(**raw, base_dir=base_dir) for raw in data.get("models", [])]
    except (TypeError, ValueError) as exc:
        raise RegistryError(str(exc)) from exc
    return Registry(entries)


@lru_cache(maxsize=8)
def load_registry(path: Path) -> Registry:
    data = yaml.safe_load(Path(path).read_text())
    return parse_registry(data, Path(path).parent)
