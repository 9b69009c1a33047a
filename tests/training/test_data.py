"""Data cleaning and split behaviour on generated images."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from damagelens.training.data import holdout_split, load_rgb, scan_image_folder, scan_yolo_dataset, stratified_kfold
from tests.training.conftest import make_image


def test_stratified_kfold_is_deterministic_and_stratified():
    labels = np.array([0] * 37 + [1] * 38 + [2] * 16 + [3] * 37 + [4] * 27 + [5] * 14)
    a = stratified_kfold(labels, 5, seed=0)
    b = stratified_kfold(labels, 5, seed=0)
    c = stratified_kfold(labels, 5, seed=1)
    assert all((x[1] == y[1]).all() for x, y in zip(a, b, strict=True))
    assert any((x[1] != y[1]).any() for x, y in zip(a, c, strict=True))
    val = np.concatenate([v for _, v in a])
    assert sorted(val.tolist()) == list(range(len(labels)))  # every photo validated exactly once
    for tr, va in a:
        assert not set(tr) & set(va)
        counts = Counter(labels[va].tolist())
        for cls, total in Counter(labels.tolist()).items():
            assert abs(counts[cls] - total / 5) <= 1  # per-class share within one photo of exact


def test_holdout_split_fixed():
    assert holdout_split(78, 0.2, 0) == holdout_split(78, 0.2, 0)
    tr, ho = holdout_split(78, 0.2, 0)
    assert len(ho) == 16 and not set(tr) & set(ho) and len(tr) + len(ho) == 78


def test_scan_drops_duplicates_corrupt_tiny_and_conflicts(tiny_folder: Path):
    # byte-identical duplicate in the same class
    shutil.copy(tiny_folder / "F_Breakage" / "F_Breakage_0.jpg", tiny_folder / "F_Breakage" / "dup.jpg")
    # same bytes under two classes → label conflict, both dropped
    shutil.copy(tiny_folder / "F_Crushed" / "F_Crushed_1.jpg", tiny_folder / "R_Crushed" / "conflict.jpg")
    # truncated JPEG and a non-image with a .jpg name
    data = (tiny_folder / "F_Normal" / "F_Normal_0.jpg").read_bytes()
    (tiny_folder / "F_Normal" / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (tiny_folder / "R_Normal" / "text.jpg").write_text("not an image")
    make_image(tiny_folder / "R_Breakage" / "tiny.jpg", seed=999, size=(20, 12))
    records, report = scan_image_folder(tiny_folder)
    assert len(report.duplicates) == 1
    assert len(report.corrupt) == 2
    assert [Path(p).name for p in report.tiny] == ["tiny.jpg"]
    assert {Path(p).name for p in report.conflicts} == {"F_Crushed_1.jpg", "conflict.jpg"}
    assert len(records) == 24 - 1  # the conflicting original is gone too
    assert report.per_class["F_Crushed"] == 3
    assert len({r.sha256 for r in records}) == len(records)


def test_exif_orientation_is_applied(tmp_path: Path):
    img = Image.new("RGB", (60, 40), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° CW on display
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif)
    assert load_rgb(path).size == (40, 60)


def test_scan_yolo_collapses_classes_and_rejects_bad_lines(tmp_path: Path):
    root = tmp_path / "yolo"
    make_image(root / "images" / "a.jpg", 1)
    make_image(root / "images" / "b.jpg", 2)
    (root / "labels").mkdir(parents=True)
    (root / "labels" / "a.txt").write_text("3 0.5 0.5 0.2 0.2\n0 2.0 0.5 0.1 0.1\nbad line\n")
    items, report = scan_yolo_dataset(root)
    assert len(items) == 2 and report["no_label"] == 1 and report["bad_lines"] == 2
    assert items[0].boxes == ((0.5, 0.5, 0.2, 0.2),)
