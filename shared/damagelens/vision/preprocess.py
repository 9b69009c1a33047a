"""Preprocessing derived from the registry entry, never re-typed at call sites (training uses it too)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from damagelens.registry import ModelEntry


def square_resize(image: Image.Image, size: int) -> Image.Image:
    """Squash to S×S, as the seed trained (no crop: damage at the edges stays visible)."""
    return image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)


def normalise(image: Image.Image, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """8-bit RGB image → normalised float tensor `[3, H, W]`."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    array = (array - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return torch.from_numpy(array.transpose(2, 0, 1).copy())


def to_input_tensor(image: Image.Image, entry: ModelEntry) -> torch.Tensor:
    """The model input for one image: `[1, 3, S, S]`.

    An ensemble's input stacks its members' own views along channels, `[1, 3k, S, S]`, each member's
    square top-left and zero-padded (`architectures.ensemble`): every member sees the photo resized
    once, from the original, to its own size.
    """
    if not entry.member_entries:
        return normalise(square_resize(image, entry.input_size), entry.mean, entry.std).unsqueeze(0)
    packed = torch.zeros(1, entry.input_channels, entry.input_size, entry.input_size)
    for i, member in enumerate(entry.member_entries):
        size = member.input_size
        packed[0, 3 * i : 3 * i + 3, :size, :size] = normalise(square_resize(image, size), member.mean, member.std)
    return packed
