"""The seed's exact module layouts, so its published checkpoints load with strict keys."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import efficientnet_v2_s, resnet18

from damagelens.registry import ModelEntry
from damagelens.vision.architectures.registry import register_architecture


class SeedResNetClassifier(nn.Module):
    """ResNet-18 held as `model`, its `fc` replaced by the seed head. CAM target: `model.layer4`."""

    def __init__(self, num_classes: int = 6):
        super().__init__()
        self.model = resnet18(weights=None)
        self.model.fc = nn.Sequential(nn.Dropout(0.5), nn.Linear(512, 256), nn.ReLU(), nn.Dropout(0.3), nn.Linear(256, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _convnext_small():
    from transformers import ConvNextConfig, ConvNextModel

    config = ConvNextConfig(depths=[3, 3, 27, 3], hidden_sizes=[96, 192, 384, 768], drop_path_rate=0.0)
    return ConvNextModel(config)


class SeedFusionClassifier(nn.Module):
    """EfficientNet-V2-S features (260 px) + ConvNeXt-Small pooler (224 px) → seed fusion head.

    One input at the EfficientNet size; the ConvNeXt branch sees it resized to 224 px, as the
    seed fed the two backbones. CAM target: `eff_features.7` (the seed hooked `eff_features[-1]`).
    """

    def __init__(self, num_classes: int = 6, cnx_size: int = 224):
        super().__init__()
        self.cnx_size = cnx_size
        self.eff_features = efficientnet_v2_s(weights=None).features
        self.eff_avgpool = nn.AdaptiveAvgPool2d(1)
        self.cnx_backbone = _convnext_small()
        self.fusion_head = nn.Sequential(
            nn.Dropout(0.4),
            nn.Linear(1280 + 768, 512),
            nn.LayerNorm(512),
            nn.GELU(),
            nn.Dropout(0.3),
            nn.Linear(512, 256),
            nn.LayerNorm(256),
            nn.GELU(),
            nn.Dropout(0.2),
            nn.Linear(256, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eff = torch.flatten(self.eff_avgpool(self.eff_features(x)), 1)
        x_cnx = nn.functional.interpolate(x, size=(self.cnx_size, self.cnx_size), mode="bilinear", align_corners=False)
        cnx = self.cnx_backbone(pixel_values=x_cnx).pooler_output
        return self.fusion_head(torch.cat([eff, cnx], dim=1))


@register_architecture("seed_resnet18")
def build_seed_resnet18(entry: ModelEntry, pretrained_backbone: bool = False) -> nn.Module:
    return SeedResNetClassifier(num_classes=len(entry.labels))


@register_architecture("seed_fusion")
def build_seed_fusion(entry: ModelEntry, pretrained_backbone: bool = False) -> nn.Module:
    return SeedFusionClassifier(num_classes=len(entry.labels))
