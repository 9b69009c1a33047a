"""The typed damage detector (`damage-types`): lensor's COCO boxes as three YOLO classes.

Lensor labels each box with one of 3 types × 3 severities, but the 9 joint classes are very
unbalanced (minor-scratch ~70 %, severe-scratch 5 train boxes, severe-dent 12): a 9-class head
would spend its few CPU epochs on classes it cannot learn. The detector therefore learns the three
*types* (dent / scratch / broken); the severity of each box is predicted separately from its crop
(see `damagelens.vision.assess`), and lensor's per-box severity is kept here for scoring that.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from damagelens.training.data import DetItem, write_yolo_view

DAMAGE_TYPES = ("dent", "scratch", "broken")
SEVERITIES = ("minor", "moderate", "severe")
LENSOR_SPLITS = ("train", "val", "test")


def lensor_typed_items(root: Path, split: str) -> tuple[list[DetItem], list[tuple[int, ...]]]:
    """Items with one type id per box (index into DAMAGE_TYPES) and, in parallel, one severity id per box.

    Categories are named `<severity>-<type>`; the unused super-category and degenerate boxes are skipped."""
    root = Path(root)
    data = json.loads((root / "annotations" / f"instances_{split}.json").read_text())
    names = {c["id"]: c["name"] for c in data["categories"]}
    images = {im["id"]: im for im in data["images"]}
    per_image: dict[int, list[tuple[tuple[float, float, float, float], int, int]]] = {i: [] for i in images}
    for ann in data["annotations"]:
        im = images.get(ann["image_id"])
        severity, _, kind = names.get(ann["category_id"], "").partition("-")
        if im is None or ann.get("iscrowd", 0) or kind not in DAMAGE_TYPES or severity not in SEVERITIES:
            continue
        x, y, w, h = ann["bbox"]
        W, H = im["width"], im["height"]
        if w <= 1 or h <= 1:
            continue
        box = tuple(min(max(v, 0.0), 1.0) for v in ((x + w / 2) / W, (y + h / 2) / H, w / W, h / H))
        per_image[ann["image_id"]].append((box, DAMAGE_TYPES.index(kind), SEVERITIES.index(severity)))  # type: ignore[arg-type]
    items, severities = [], []
    for iid, im in sorted(images.items()):
        path = root / "images" / split / im["file_name"]
        if not path.exists():
            continue
        anns = per_image[iid]
        items.append(DetItem(path, tuple(a[0] for a in anns), tuple(a[1] for a in anns)))
        severities.append(tuple(a[2] for a in anns))
    return items, severities


def build_typed_dataset(lensor_root: Path, work_dir: Path, agnostic: bool = False) -> Path:
    """YOLO data.yaml over symlinks with lensor's own train/val/test splits (3 type classes, or one
    class `damage` with `agnostic=True` for class-agnostic scoring)."""
    work_dir = Path(work_dir)
    if work_dir.exists():
        shutil.rmtree(work_dir)
    counts = {}
    for split in LENSOR_SPLITS:
        items, _ = lensor_typed_items(lensor_root, split)
        if agnostic:
            items = [DetItem(it.image, it.boxes) for it in items]
        write_yolo_view(items, work_dir, split)
        counts[split] = {"images": len(items), "boxes": sum(len(it.boxes) for it in items)}
    names = ["damage"] if agnostic else list(DAMAGE_TYPES)
    yaml_path = work_dir / "data.yaml"
    yaml_path.write_text(
        f"path: {work_dir.resolve()}\ntrain: images/train\nval: images/val\ntest: images/test\nnames:\n"
        + "".join(f"  {i}: {n}\n" for i, n in enumerate(names))
    )
    (work_dir / "counts.json").write_text(json.dumps(counts, indent=2))
    return yaml_path


def evaluate_typed(weights: Path, data_yaml: Path, split: str = "test", imgsz: int = 416, device: str = "cpu") -> dict:
    """Overall and per-class mAP50 / mAP50-95 of a multi-class detector on one split of `data_yaml`."""
    import tempfile

    import numpy as np

    from damagelens.offline import ensure_offline_env

    ensure_offline_env()
    from ultralytics import YOLO

    model = YOLO(str(weights), task="detect")
    with tempfile.TemporaryDirectory(prefix="dl-val-") as tmp:
        metrics = model.val(
            data=str(data_yaml), split=split, imgsz=imgsz, batch=4, device=device, workers=0, plots=False,
            verbose=False, conf=0.001, iou=0.6, project=tmp, name="val",
        )  # fmt: skip
    names = model.names
    f1 = np.asarray(metrics.box.f1_curve).mean(0)  # mean F1 over classes at each confidence of `px`
    best = int(f1.argmax())
    per_class = {}
    for i, c in enumerate(metrics.box.ap_class_index.tolist()):
        per_class[names[int(c)]] = {"map50": round(float(metrics.box.ap50[i]), 4), "map50_95": round(float(metrics.box.ap[i]), 4)}
    return {
        "map50": round(float(metrics.box.map50), 4),
        "map50_95": round(float(metrics.box.map), 4),
        "per_class": per_class,
        "best_f1": round(float(f1[best]), 4),
        "best_f1_conf": round(float(np.asarray(metrics.box.px)[best]), 3),  # the serving threshold is chosen on val by this
    }


def score_typed_detector(weights: Path, lensor_root: Path, work_dir: Path, imgsz: int = 416) -> dict:
    """What the model card reports: typed mAP on lensor val and test, class-agnostic mAP on lensor test."""
    from damagelens.training.yolo import evaluate_detector

    typed = build_typed_dataset(lensor_root, Path(work_dir) / "typed")
    agnostic = build_typed_dataset(lensor_root, Path(work_dir) / "agnostic", agnostic=True)
    return {
        "val": evaluate_typed(weights, typed, "val", imgsz),
        "test": evaluate_typed(weights, typed, "test", imgsz),
        "test_agnostic": evaluate_detector(weights, agnostic, imgsz=imgsz, split="test"),
    }


def score_region_severity(entry, model, lensor_root: Path, split: str = "test") -> dict:
    """How well the severity model, run on a context crop of each *annotated* lensor box (as the assess
    stage runs it on each detected box), matches lensor's per-box severity; with two baselines: every
    box `minor` (the majority), and every box given the photo-level severity."""
    import numpy as np
    import torch

    from damagelens.training.classify import classification_metrics
    from damagelens.training.data import load_rgb
    from damagelens.vision.assess import region_crop
    from damagelens.vision.preprocess import normalise, square_resize

    items, severities = lensor_typed_items(lensor_root, split)
    y_true, y_region, y_photo = [], [], []
    labels = tuple(entry.labels)
    order = [labels.index(s) for s in SEVERITIES]  # model label order → SEVERITIES order
    with torch.inference_mode():
        for it, sev in zip(items, severities, strict=True):
            if not it.boxes:
                continue
            image = load_rgb(it.image)
            w, h = image.size
            crops = [image]
            for cx, cy, bw, bh in it.boxes:
                crops.append(region_crop(image, [(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h]))
            x = torch.stack([normalise(square_resize(c, entry.input_size), entry.mean, entry.std) for c in crops])
            pred = model(x).float().argmax(1).tolist()
            pred = [order.index(p) if p in order else p for p in pred]
            y_true += list(sev)
            y_region += pred[1:]
            y_photo += [pred[0]] * len(sev)
    y = np.asarray(y_true)
    return {
        "split": split,
        "boxes": len(y_true),
        "true_distribution": {s: int((y == i).sum()) for i, s in enumerate(SEVERITIES)},
        "region_crop": classification_metrics(y, np.asarray(y_region), SEVERITIES),
        "photo_severity_for_every_box": classification_metrics(y, np.asarray(y_photo), SEVERITIES),
        "all_minor": classification_metrics(y, np.zeros_like(y), SEVERITIES),
    }
