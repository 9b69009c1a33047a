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


ENSEMBLE = "mean_ensemble"


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
    members: tuple[str, ...] = Field((), description="an ensemble's member models, by registry name; it serves their mean")
    member_entries: tuple[ModelEntry, ...] = Field((), exclude=True, description="the members, resolved by the registry")
    base_dir: Path | None = Field(None, exclude=True, description="where relative weight paths start")

    @model_validator(mode="after")
    def _check(self) -> ModelEntry:
        if self.task in ("classify", "severity") and not self.labels:
            raise ValueError(f"classifier {self.name!r} needs labels")
        if self.weights is not None and self.sha256 is None:
            raise ValueError(f"weights of {self.name!r} need a sha256 (checked on every load)")
        if bool(self.members) != (self.architecture == ENSEMBLE):
            raise ValueError(f"{self.name!r}: members go with architecture {ENSEMBLE!r} and only with it")
        if self.members and self.weights is not None:
            raise ValueError(f"ensemble {self.name!r} has no weights of its own: its members carry them")
        return self

    @property
    def input_channels(self) -> int:
        """3, or 3 per member for an ensemble (its members' views stacked: `vision.preprocess.to_input_tensor`)."""
        return 3 * (len(self.members) or 1)

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
            members=list(self.members),
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
        for entry in list(self._entries.values()):
            if entry.members:
                self._entries[entry.name] = entry.model_copy(
                    update={"member_entries": tuple(self._member(entry, m) for m in entry.members)}
                )

    def _member(self, ensemble: ModelEntry, name: str) -> ModelEntry:
        """Members must be plain classifiers with weights and the ensemble's labels; the first sets the input size."""
        canonical = self._aliases.get(name, name)
        member = self._entries.get(canonical)
        if member is None or member.task != "classify" or member.members or member.weights is None:
            raise RegistryError(f"ensemble {ensemble.name!r}: member {name!r} is not a classifier with weights in this registry")
        if member.labels != ensemble.labels:
            raise RegistryError(f"ensemble {ensemble.name!r}: member {name!r} has other labels")
        if member.input_size > ensemble.input_size or (name == ensemble.members[0] and member.input_size != ensemble.input_size):
            raise RegistryError(f"ensemble {ensemble.name!r}: its input size is its first member's, and no member's is larger")
        return member

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
