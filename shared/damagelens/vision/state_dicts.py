"""Weight-file I/O with no model knowledge, so backbones, loaders and exporters can all use it
without importing one another (this is what keeps `loading` and `architectures` acyclic)."""

from __future__ import annotations

import torch
from torch import nn


def load_state_dict(path) -> dict[str, torch.Tensor]:
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state


def load_weights_into(model: nn.Module, path) -> nn.Module:
    """Strict load (seed key names included); FP16 files are widened to FP32 first."""
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_state_dict(path).items()}
    model.load_state_dict(state, strict=True)
    return model.float().eval()
