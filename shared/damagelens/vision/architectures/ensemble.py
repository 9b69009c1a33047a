"""`mean_ensemble`: registry models served as one, their probabilities averaged.

Out of fold, the mean of `fast` and the fusion model beat both members on every measure that
matters to a user (docs/models/accurate.md): accuracy, macro-F1 and the share of photos that
need no review. Members stay separate registry entries with their own weight files; the loader
fills them (`vision.loading`), so nothing is stored twice.
"""

from __future__ import annotations

import torch
from torch import nn

from damagelens.registry import ModelEntry
from damagelens.vision.architectures.registry import build_architecture, register_architecture


class MeanEnsemble(nn.Module):
    """Input: the members' own views stacked along channels (`preprocess.to_input_tensor`): member i
    reads channels 3i..3i+2, top-left `size_i` square, so each sees the photo exactly as it was
    trained on (a resize of a resize shifted 4 % of the argmaxes on the 169 photos). One tensor in,
    so Grad-CAM, ONNX export and batching treat the ensemble like any model.

    Output: the log of the members' mean softmax, so `softmax(output / T)` is their calibrated mean
    (T = 1 gives exactly the mean) and Grad-CAM has a differentiable class score.

    `mirror_tta`: each member also sees its view mirrored left-right, in the same forward pass (the
    batch doubled), and counts as the mean of both views' softmax — what `scripts/oof_ensemble.py
    --mirror` scores out of fold. Mirroring keeps front and rear, so the labels are unchanged. The
    doubled batch is ordered [views, mirrored views]: a CAM at a member's layer yields the eval views'
    maps first, so Grad-CAM's first N maps explain the photos as they are (`vision.explain`).
    """

    def __init__(self, members: list[nn.Module], sizes: list[int], mirror_tta: bool = False):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.sizes = list(sizes)
        self.mirror_tta = mirror_tta

    def _member_probs(self, member: nn.Module, view: torch.Tensor) -> torch.Tensor:
        if not self.mirror_tta:
            return torch.softmax(member(view).float(), dim=1)
        probs = torch.softmax(member(torch.cat([view, view.flip(-1)])).float(), dim=1)
        return probs.reshape(2, -1, probs.shape[1]).mean(dim=0)  # [2N, C] -> [views, mirrors] -> mean; batch stays dynamic in ONNX

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = [
            self._member_probs(member, x[:, 3 * i : 3 * i + 3, :size, :size])
            for i, (size, member) in enumerate(zip(self.sizes, self.members, strict=True))
        ]
        return torch.log(torch.stack(probs).mean(dim=0).clamp_min(1e-12))


@register_architecture("mean_ensemble")
def build_mean_ensemble(entry: ModelEntry, pretrained_backbone: bool = False) -> nn.Module:
    if not entry.member_entries:
        raise ValueError(f"ensemble {entry.name!r} has no resolved members: load it through the registry")
    members = [build_architecture(member, pretrained_backbone) for member in entry.member_entries]
    return MeanEnsemble(members, [member.input_size for member in entry.member_entries], **entry.options)
