"""Augmentation pipelines. Evaluation matches the service: squash-resize to S×S, normalise."""

from __future__ import annotations

import torch
from PIL import Image
from torchvision.transforms import v2 as T

from damagelens.vision.preprocess import normalise, square_resize


def eval_view(image: Image.Image, size: int, mean, std, flip: bool = False) -> torch.Tensor:
    """Exactly what the service feeds the model (optionally mirrored, for TTA)."""
    im = square_resize(image, size)
    if flip:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return normalise(im, mean, std)


def train_transform(size: int, strength: str = "medium") -> T.Compose:
    """Photo-level augmentation: crops keep most of the car (view and damage must stay visible).

    `seed`: the seed's own pipeline (resize, flip, ±15° rotation, colour jitter 0.2), for the baseline."""
    if strength == "seed":
        return T.Compose(
            [T.Resize((size, size), antialias=True), T.RandomHorizontalFlip(), T.RandomRotation(15), T.ColorJitter(0.2, 0.2, 0.2)]
        )
    # "closeup": one panel of the car, as a user photographs it up close (not for labels that need the
    # whole car: only Normal photos are trained on such views, see TrainConfig.normal_closeups)
    scale = {"light": (0.7, 1.0), "medium": (0.5, 1.0), "strong": (0.35, 1.0), "closeup": (0.12, 0.35)}[strength]
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
