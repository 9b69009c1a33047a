"""The seed's ResNet-18 recipe on the closest backbone available offline (a comparison baseline, not served).

The seed froze ResNet-18 except `layer3` and `layer4` (its stride-16 and stride-32 stages) and put
Dropout(0.5) → Linear(512→256) → ReLU → Dropout(0.3) → Linear(256→6) on the pooled features, at
128 px with ImageNet normalisation. No ResNet weights can be installed offline, so this keeps the
recipe on torchvision's MobileNetV2: frozen up to its stride-16 stages (`features[:7]`), those and
the stride-32 stages fine-tuned, and the seed's head on the 1280-d pooled feature.
"""

from __future__ import annotations

import torch
from torch import nn

from damagelens.registry import ModelEntry
from damagelens.vision.architectures.registry import register_architecture
from damagelens.vision.backbones import mobilenet_v2_features


class SeedHeadMobileNet(nn.Module):
    """CAM target: `features.18`. `split`: MobileNetV2 `features` modules in the frozen stem."""

    def __init__(self, num_classes: int, pretrained: bool = False, split: int = 7):
        super().__init__()
        self.split = split
        self.features_ = mobilenet_v2_features(pretrained)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head_in_features = 1280
        self.head = nn.Sequential(nn.Dropout(0.5), nn.Linear(1280, 256), nn.ReLU(), nn.Dropout(0.3), nn.Linear(256, num_classes))

    def stem(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        for layer in self.features_[: self.split]:
            x = layer(x)
        return (x,)

    def features(self, cached: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x = cached[0]
        for layer in self.features_[self.split :]:
            x = layer(x)
        return torch.flatten(self.pool(x), 1)

    def tail(self, cached: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return self.head(self.features(cached))

    def tail_modules(self) -> list[nn.Module]:
        return list(self.features_[self.split :])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.stem(x))


@register_architecture("seed_head_mobilenet")
def build_seed_head_mobilenet(entry: ModelEntry, pretrained_backbone: bool = False) -> nn.Module:
    return SeedHeadMobileNet(len(entry.labels), pretrained=pretrained_backbone, **entry.options)
