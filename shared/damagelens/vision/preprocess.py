"""Preprocessing derived from the registry entry, never re-typed at call sites."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from damagelens.registry import ModelEntry


def to_input_tensor(image: Image.Image, entry: ModelEntry) -> torch.Tensor:
    """Resize to the entry's square input (as the seed trained) and normalise: `[1, 3, S, S]`."""
    size = entry.input_size
    resized = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    array = np.asarray(resized, dtype=np.float32) / 255.0
    mean = np.asarray(entry.mean, dtype=np.float32)
    std = np.asarray(entry.std, dtype=np.float32)
    array = (array - mean) / std
    return torch.from_numpy(array.transpose(2, 0, 1).copy()).unsqueeze(0)
