"""The recipes behind the registry's `fast` and `accurate` classifiers (what `train classify` runs)."""

from __future__ import annotations

from dataclasses import dataclass, field

from damagelens.registry import ModelEntry
from damagelens.training.classify import TrainConfig
from damagelens.training.data import LABELS
from damagelens.training.finetune import FinetuneConfig


@dataclass(frozen=True)
class Preset:
    architecture: str
    input_size: int
    options: dict
    cam_target_layer: str
    config: TrainConfig | FinetuneConfig = field(default_factory=TrainConfig)
    description: str = ""
    labels: tuple[str, ...] = LABELS

    @property
    def recipe(self) -> str:
        """`cached` (frozen stem, cached activations) or `finetune` (every layer, fresh augmentations)."""
        return "finetune" if isinstance(self.config, FinetuneConfig) else "cached"


PRESETS: dict[str, Preset] = {
    "fast": Preset(
        architecture="lite_single",
        input_size=224,
        options={"variant": 0, "split": 6, "structured": True},
        cam_target_layer="backbone.bn2",
        config=TrainConfig(epochs=25, lr_backbone=3e-4, n_aug=10),
        description="EfficientNet-Lite0 (ImageNet, Apache-2.0); last stage + conv head + structured view×condition head fine-tuned",
    ),
    "accurate": Preset(
        architecture="lite_fusion",
        input_size=260,
        options={"variant": 2, "split": 6, "mb_split": 17, "hidden": 512, "structured": True},
        cam_target_layer="lite.bn2",
        config=TrainConfig(epochs=25, lr_backbone=3e-4, n_aug=10),
        description="EfficientNet-Lite2 + MobileNetV2 fusion (ImageNet); last stages + fusion head fine-tuned",
    ),
}


SEVERITY_LABELS: tuple[str, ...] = ("minor", "moderate", "severe")

SEVERITY_PRESETS: dict[str, Preset] = {
    # Photo-level severity (`train severity`): its data comes with a train/val split, so it is fitted on
    # train and selected (early stopping) on val by `classify.holdout_fit` instead of cross-validated.
    "severity": Preset(
        architecture="lite_single",
        input_size=224,
        options={"variant": 0, "split": 6},
        cam_target_layer="backbone.bn2",
        config=TrainConfig(epochs=30, lr_backbone=3e-4, n_aug=6, patience=6),
        description="EfficientNet-Lite0 (ImageNet, Apache-2.0); last stage + conv head + linear head fine-tuned on VDS-2.5k train",
        labels=SEVERITY_LABELS,
    ),
}


def preset_entry(name: str, preset: Preset | None = None) -> ModelEntry:
    p = preset or PRESETS[name]
    return ModelEntry(
        name=name,
        task="classify",
        architecture=p.architecture,
        version="train",
        labels=p.labels,
        input_size=p.input_size,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        options=p.options,
        cam_target_layer=p.cam_target_layer,
        trained=False,
    )
