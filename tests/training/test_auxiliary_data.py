"""Auxiliary training signal from detection/: lensor damage tags and seed-yolo damage crops (generated files)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from damagelens.training.data import LENSOR_TAGS, damage_boxes_by_name, damage_crop, lensor_damage_tags, scan_image_folder
from tests.training.conftest import make_image
from tests.training.test_models import tiny_entry

LENSOR_CATEGORIES = ["severity-damage", "minor-dent", "minor-scratch", "moderate-broken", "moderate-dent", "moderate-scratch"]
LENSOR_CATEGORIES += ["severe-broken", "severe-dent", "severe-scratch"]


def make_lensor(root: Path, n: int = 6) -> Path:
    """A lensor-shaped COCO set: image i gets category (i % 8) + 1; the last image has no box."""
    images, annotations = [], []
    for i in range(n):
        make_image(root / "images" / "train" / f"l{i}.jpg", seed=900 + i, size=(64, 64))
        images.append({"id": i, "file_name": f"l{i}.jpg", "width": 64, "height": 64})
        if i < n - 1:
            annotations.append({"id": i, "image_id": i, "category_id": i % 8 + 1, "bbox": [4, 4, 20, 20]})
    cats = [{"id": k, "name": name} for k, name in enumerate(LENSOR_CATEGORIES)]
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    coco = {"images": images, "annotations": annotations, "categories": cats}
    (root / "annotations" / "instances_train.json").write_text(json.dumps(coco))
    return root


def test_lensor_tags_multi_hot(tmp_path: Path):
    records, tags = lensor_damage_tags(make_lensor(tmp_path / "lensor", n=6), "train")
    assert len(records) == 5 and tags.shape == (5, len(LENSOR_TAGS))  # the image without boxes is skipped
    as_dict = {r.path.name: dict(zip(LENSOR_TAGS, row, strict=True)) for r, row in zip(records, tags, strict=True)}
    assert as_dict["l0.jpg"]["dent"] == 1 and as_dict["l0.jpg"]["moderate_or_severe"] == 0  # minor-dent
    assert as_dict["l2.jpg"]["broken"] == 1 and as_dict["l2.jpg"]["moderate_or_severe"] == 1 and as_dict["l2.jpg"]["severe"] == 0
    assert as_dict["l1.jpg"] == {"dent": 0, "scratch": 1, "broken": 0, "moderate_or_severe": 0, "severe": 0}


def test_damage_crop_keeps_the_box_and_context():
    image = Image.new("RGB", (400, 300))
    box = (0.9, 0.5, 0.1, 0.2)  # near the right edge
    for _ in range(20):
        crop = damage_crop(image, box)
        assert 0.25 * 400 <= crop.size[0] <= 400 and 0.25 * 300 <= crop.size[1] <= 300
        assert 0.6 <= crop.size[0] / crop.size[1] <= 1.7


def test_seed_yolo_boxes_keyed_by_class_file_name(tmp_path: Path):
    labels = tmp_path / "seed-yolo" / "labels"
    labels.mkdir(parents=True)
    (labels / "01c876bc-FC_176.txt").write_text("0 0.5 0.5 0.2 0.3\n0 0.1 0.1 0.05 0.05\n")
    (labels / "0bb86823-RB_77.txt").write_text("")
    boxes = damage_boxes_by_name(tmp_path / "seed-yolo")
    assert boxes == {"FC_176.jpg": ((0.5, 0.5, 0.2, 0.3), (0.1, 0.1, 0.05, 0.05))}


@pytest.mark.slow
def test_cached_recipe_with_lensor_and_box_views(tiny_folder: Path, tmp_path: Path, monkeypatch):
    from damagelens.settings import get_settings
    from damagelens.training.classify import TrainConfig, cross_validate

    data = tmp_path / "data"
    make_lensor(data / "detection" / "lensor")
    labels = data / "detection" / "seed-yolo" / "labels"
    labels.mkdir(parents=True)
    (labels / "abcd-F_Breakage_0.txt").write_text("0 0.5 0.5 0.3 0.3\n")
    monkeypatch.setenv("DAMAGELENS_DATA_DIR", str(data))
    get_settings.cache_clear()
    try:
        records, _ = scan_image_folder(tiny_folder)
        cfg = TrainConfig(epochs=1, n_aug=2, box_views=1, lensor_weight=0.5, lensor_views=3, batch_size=8, warmup_epochs=0.5)
        cv = cross_validate(tiny_entry(), records, cfg, folds=2, cache_dir=tmp_path / "cache", pretrained=False)
    finally:
        get_settings.cache_clear()
    assert cv["n"] == 24 and np.asarray(cv["confusion"]).sum() == 24
    caches = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert any("-lensor-" in name for name in caches) and len(caches) == 2
