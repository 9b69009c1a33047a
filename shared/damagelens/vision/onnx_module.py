"""An ONNX Runtime classifier session behind the `nn.Module` call that torch-side code already makes (`model(batch)`).

The assess stage scores the photo and its region crops in one batch through its severity model;
wrapping the exported graph lets that code run unchanged on either backend (the graph has a
dynamic batch axis: `training.export.export_onnx`).
"""

from __future__ import annotations

import torch
from torch import nn

from damagelens.vision.onnx_backend import OnnxClassifier


class OnnxModule(nn.Module):
    """Inference only: `forward` takes a float32 CPU batch `[n, 3, S, S]` and returns the logits as a tensor."""

    def __init__(self, session: OnnxClassifier) -> None:
        super().__init__()
        self.session = session
        self.entry = session.entry
        # callers read device and dtype from the first parameter: an empty CPU float32 one answers both
        self.anchor = nn.Parameter(torch.zeros(0), requires_grad=False)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.logits(batch.detach().cpu().float().numpy()))
