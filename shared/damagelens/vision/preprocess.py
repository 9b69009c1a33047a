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
    """The model input for one image: `[1, 3, S, S]`."""
    return normalise(square_resize(image, entry.input_size), entry.mean, entry.std).unsqueeze(0)
