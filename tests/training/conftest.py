"""Fixtures for training tests: tiny generated photos (no downloads, no real data needed)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("YOLO_CONFIG_DIR", "/tmp/yolo-cfg-tests")

CLASS_DIRS = ("F_Breakage", "F_Crushed", "F_Normal", "R_Breakage", "R_Crushed", "R_Normal")


def make_image(path: Path, seed: int, size: tuple[int, int] = (80, 64), tint: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    arr[..., tint % 3] = np.clip(arr[..., tint % 3].astype(int) + 80, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, quality=90)
    return path


@pytest.fixture
def tiny_folder(tmp_path: Path) -> Path:
    """Six class folders with 4 distinct generated JPEGs each."""
    root = tmp_path / "six"
    for c, cls in enumerate(CLASS_DIRS):
        for i in range(4):
            make_image(root / cls / f"{cls}_{i}.jpg", seed=100 * c + i, tint=c)
    return root
