"""The project's own classifiers, built on offline-available ImageNet backbones.

`lite_single` (served as `fast`): EfficientNet-Lite + a head.
`lite_fusion` (served as `accurate`): EfficientNet-Lite2 and MobileNetV2 features concatenated
into a fusion head, in the spirit of the seed's EfficientNet+ConvNeXt fusion.

Both split into a `stem` (frozen during training; its activations are cached for several
augmented views per photo) and a `tail` (last backbone blocks + head, fine-tuned on the cache):
`forward(x) == tail(stem(x))`.

Heads can be *structured*: the six classes are view × condition (Front/Rear × Breakage/Crushed/
Normal, in registry label order), and the logit of (v, c) is `view[v] + cond[c] + inter[v, c]`.
The training loss adds cross-entropies on the view and condition marginals, so condition
evidence is pooled across the two views.
"""

from __future__ import annotations

import torch
from torch import nn

from damagelens.registry import ModelEntry
from damagelens.vision.architectures.registry import register_architecture
from damagelens.vision.backbones import IMAGENET_MEAN, IMAGENET_STD, efficientnet_lite, mobilenet_v2_features


def _trunk(in_features: int, hidden: int, dropout: float) -> tuple[nn.Module, int]:
    if hidden <= 0:
        return nn.Dropout(dropout), in_features
    layers = [nn.Dropout(dropout), nn.Linear(in_features, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Dropout(dropout / 2)]
    return nn.Sequential(*layers), hidden


class FlatHead(nn.Module):
    def __init__(self, in_features: int, num_classes: int, hidden: int, dropout: float):
        super().__init__()
        self.trunk, d = _trunk(in_features, hidden, dropout)
        self.fc = nn.Linear(d, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.trunk(x))


class StructuredHead(nn.Module):
    """logit[v * n_cond + c] = view[v] + cond[c] + inter[v, c] (labels ordered view-major)."""

    def __init__(self, in_features: int, n_views: int, n_conds: int, hidden: int, dropout: float):
        super().__init__()
        self.n_views, self.n_conds = n_views, n_conds
        self.trunk, d = _trunk(in_features, hidden, dropout)
        self.view = nn.Linear(d, n_views)
        self.cond = nn.Linear(d, n_conds)
        self.inter = nn.Linear(d, n_views * n_conds)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.trunk(x)
        v = self.view(h)[:, :, None]
        c = self.cond(h)[:, None, :]
        return (v + c).flatten(1) + self.inter(h)


def _make_head(in_features: int, num_classes: int, hidden: int, dropout: float, structured: bool) -> nn.Module:
    if structured:
        if num_classes != 6:
            raise ValueError("structured head expects 6 labels (2 views × 3 conditions)")
        return StructuredHead(in_features, 2, 3, hidden, dropout)
    return FlatHead(in_features, num_classes, hidden, dropout)


def _lite_stem(backbone: nn.Module, split: int, x: torch.Tensor) -> torch.Tensor:
    x = backbone.bn1(backbone.conv_stem(x))
    for block in backbone.blocks[:split]:
        x = block(x)
    return x


def _lite_tail(backbone: nn.Module, split: int, x: torch.Tensor) -> torch.Tensor:
    for block in backbone.blocks[split:]:
        x = block(x)
    x = backbone.bn2(backbone.conv_head(x))
    return torch.flatten(backbone.global_pool(x), 1)


class LiteClassifier(nn.Module):
    """CAM target: `backbone.bn2` (last conv block, after its activation).

    `split`: number of EfficientNet stages in the frozen stem (timm `blocks[:split]`).
    """

    def __init__(
        self,
        num_classes: int,
        variant: int = 0,
        hidden: int = 0,
        dropout: float = 0.3,
        pretrained: bool = False,
        split: int = 6,
        structured: bool = False,
    ):
        super().__init__()
        self.split = split
        self.backbone = efficientnet_lite(variant, pretrained)
        self.head_in_features = self.backbone.num_features
        self.head = _make_head(self.backbone.num_features, num_classes, hidden, dropout, structured)

    def stem(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (_lite_stem(self.backbone, self.split, x),)

    def features(self, cached: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return _lite_tail(self.backbone, self.split, cached[0])

    def tail(self, cached: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return self.head(self.features(cached))

    def tail_modules(self) -> list[nn.Module]:
        return [*self.backbone.blocks[self.split :], self.backbone.conv_head, self.backbone.bn2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.stem(x))


class LiteFusionClassifier(nn.Module):
    """Input normalised for Lite (mean/std 0.5); the MobileNetV2 branch re-normalises to ImageNet stats.

    CAM target: `lite.bn2`. `split` / `mb_split`: frozen Lite stages / MobileNetV2 `features` modules.
    """

    def __init__(
        self,
        num_classes: int,
        variant: int = 2,
        hidden: int = 512,
        dropout: float = 0.4,
        pretrained: bool = False,
        split: int = 6,
        mb_split: int = 17,
        structured: bool = False,
    ):
        super().__init__()
        self.split, self.mb_split = split, mb_split
        self.lite = efficientnet_lite(variant, pretrained)
        self.mobilenet = mobilenet_v2_features(pretrained)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.register_buffer("_mb_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_mb_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.head_in_features = self.lite.num_features + 1280
        self.head = _make_head(self.head_in_features, num_classes, hidden, dropout, structured)

    def stem(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        a = _lite_stem(self.lite, self.split, x)
        b = (x * 0.5 + 0.5 - self._mb_mean) / self._mb_std
        for layer in self.mobilenet[: self.mb_split]:
            b = layer(b)
        return a, b

    def features(self, cached: tuple[torch.Tensor, ...]) -> torch.Tensor:
        a = _lite_tail(self.lite, self.split, cached[0])
        b = cached[1]
        for layer in self.mobilenet[self.mb_split :]:
            b = layer(b)
        return torch.cat([a, torch.flatten(self.pool(b), 1)], dim=1)

    def tail(self, cached: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return self.head(self.features(cached))

    def tail_modules(self) -> list[nn.Module]:
        return [*self.lite.blocks[self.split :], self.lite.conv_head, self.lite.bn2, *self.mobilenet[self.mb_split :]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.stem(x))


@register_architecture("lite_single")
def build_lite_single(entry: ModelEntry, pretrained_backbone: bool = False) -> nn.Module:
    return LiteClassifier(len(entry.labels), pretrained=pretrained_backbone, **entry.options)


@register_architecture("lite_fusion")
def build_lite_fusion(entry: ModelEntry, pretrained_backbone: bool = False) -> nn.Module:
    return LiteFusionClassifier(len(entry.labels), pretrained=pretrained_backbone, **entry.options)
