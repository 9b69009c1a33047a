"""Augmentation pipelines. Evaluation matches the service: squash-resize to S×S, normalise."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2 as T


def normalise(image: Image.Image, mean, std) -> torch.Tensor:
    array = (np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0 - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return torch.from_numpy(array.transpose(2, 0, 1).copy())


def eval_view(image: Image.Image, size: int, mean, std, flip: bool = False) -> torch.Tensor:
    """Exactly what `damagelens.vision.preprocess.to_input_tensor` feeds the model (optionally mirrored, for TTA)."""
    im = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    if flip:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return normalise(im, mean, std)


def train_transform(size: int, strength: str = "medium") -> T.Compose:
    """Photo-level augmentation: crops keep most of the car (view and damage must stay visible)."""
    scale = {"light": (0.7, 1.0), "medium": (0.5, 1.0), "strong": (0.35, 1.0)}[strength]
    return T.Compose(
        [
            T.RandomResizedCrop(size, scale=scale, ratio=(0.7, 1.45), antialias=True),
            T.RandomHorizontalFlip(),
            T.RandomApply([T.RandomRotation(10)], p=0.3),
            T.ColorJitter(0.3, 0.3, 0.25, 0.03),
            T.RandomGrayscale(p=0.05),
        ]
    )


def train_view(image: Image.Image, size: int, mean, std, transform: T.Compose) -> torch.Tensor:
    return normalise(transform(image.convert("RGB")), mean, std)
