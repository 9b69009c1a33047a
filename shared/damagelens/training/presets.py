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
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    labels: tuple[str, ...] = LABELS

    @property
    def recipe(self) -> str:
        """`cached` (frozen stem, cached activations) or `finetune` (every layer, fresh augmentations)."""
        return "finetune" if isinstance(self.config, FinetuneConfig) else "cached"


PRESETS: dict[str, Preset] = {
    "fast": Preset(
        architecture="lite_single",
        input_size=288,
        options={"variant": 0, "split": 6, "structured": True},
        cam_target_layer="backbone.bn2",
        # v2 (2,106 photos): 4 augmented views instead of 10 and 8 epochs instead of 25 (≈ 4× the optimiser
        # steps of v1) keep a grouped 5-fold CV within ~30 min on 2 CPU cores; CV predicts the served view (no TTA).
        # v3: 288 px instead of 224 (grouped CV 0.777 vs 0.758; served forward pass 17 vs 11 ms in onnxruntime)
        config=TrainConfig(epochs=8, lr_backbone=3e-4, n_aug=4, tta=False),
        description="EfficientNet-Lite0 (ImageNet, Apache-2.0); last stage + conv head + structured view×condition head fine-tuned",
    ),
    "accurate": Preset(
        architecture="lite_fusion",
        input_size=260,
        options={"variant": 2, "split": 6, "mb_split": 17, "hidden": 512, "structured": True},
        cam_target_layer="lite.bn2",
        # v3: the eval view, its mirror and 2 augmentations are cached (the two-backbone stem is ~3× Lite0's
        # cost; v2 could afford only the first two and trained its head alone), 6 epochs; docs/models/experiments.md
        config=TrainConfig(epochs=6, lr_backbone=3e-4, n_aug=2, tta=False),
        description="EfficientNet-Lite2 + MobileNetV2 fusion (ImageNet); last stages + fusion head fine-tuned",
    ),
    # Comparison only (never installed): the seed's ResNet-18 recipe — 128 px, ImageNet normalisation, the
    # stride-16/32 stages fine-tuned at lr 1e-5, its Dropout/256/ReLU head at 1e-4, plain cross-entropy,
    # resize + flip + rotation + jitter — on MobileNetV2, the closest backbone installable offline.
    "seed-baseline": Preset(
        architecture="seed_head_mobilenet",
        input_size=128,
        options={"split": 7},
        cam_target_layer="features_.18",
        config=TrainConfig(
            epochs=15,
            lr_head=1e-4,
            lr_backbone=1e-5,
            weight_decay=0.01,
            label_smoothing=0.0,
            aux_weight=0.0,
            warmup_epochs=0.0,
            balanced=False,
            tta=False,
            n_aug=2,
            aug_strength="seed",
        ),
        description="seed ResNet-18 recipe on MobileNetV2 (ImageNet, BSD-3): comparison baseline",
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
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
        mean=p.mean,
        std=p.std,
        options=p.options,
        cam_target_layer=p.cam_target_layer,
        trained=False,
    )
