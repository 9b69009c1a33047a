"""Load registry entries into ready-to-run models on the chosen device."""

from __future__ import annotations

import logging
import time

import torch
from torch import nn

from damagelens.registry import ModelEntry
from damagelens.registry.weights import resolve_weights
from damagelens.vision.architectures import build_architecture
from damagelens.vision.state_dicts import load_weights_into

log = logging.getLogger(__name__)


def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {spec!r} requested but CUDA is not available")
    return device


def load_classifier(entry: ModelEntry, device: torch.device, half: bool | None = None) -> nn.Module:
    """Build, load strictly (seed layouts included), move, and set eval mode.

    An entry without weights gets its ImageNet backbone and a seeded random head, so the
    untrained placeholder is at least deterministic; an ensemble loads its members' files.
    """
    started = time.perf_counter()
    path = resolve_weights(entry)
    if entry.member_entries:  # an ensemble: each member from its own verified weight file
        model = build_architecture(entry, pretrained_backbone=False)
        for module, member in zip(model.members, entry.member_entries, strict=True):
            load_weights_into(module, resolve_weights(member))
    elif path is None:
        torch.manual_seed(0)
        model = build_architecture(entry, pretrained_backbone=True)
    else:
        model = load_weights_into(build_architecture(entry, pretrained_backbone=False), path)
    model = model.float().to(device).eval()
    if half if half is not None else device.type == "cuda":
        model = model.half()
    log.info("loaded model", extra={"model": entry.name, "device": str(device), "ms": round((time.perf_counter() - started) * 1000)})
    return model


def model_dtype(model: nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype
