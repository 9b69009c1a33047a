"""Data scanning and cleaning, stratified splits, and detection-set conversion.

Nothing here copies photos: records point at files under the configurable data folder
(`damagelens.settings.get_settings().data_dir`, env `DAMAGELENS_DATA_DIR`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from damagelens.imaging import ImageError, load_upright_rgb

log = logging.getLogger(__name__)

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
# seed folder names, in registry label order ("Front Breakage", ..., "Rear Normal")
CLASS_DIRS = ("F_Breakage", "F_Crushed", "F_Normal", "R_Breakage", "R_Crushed", "R_Normal")
LABELS = ("Front Breakage", "Front Crushed", "Front Normal", "Rear Breakage", "Rear Crushed", "Rear Normal")


def data_dir() -> Path:
    from damagelens.settings import get_settings

    return Path(get_settings().data_dir)


def load_rgb(path: Path | str) -> Image.Image:
    """The service's own decoding (EXIF orientation, alpha, 16-bit, CMYK), so training sees what serving sees."""
    from damagelens.settings import get_settings

    return load_upright_rgb(Path(path).read_bytes(), get_settings().max_pixels)


@dataclass(frozen=True)
class ImageRecord:
    path: Path
    label: int
    sha256: str
    width: int
    height: int


@dataclass
class ScanReport:
    kept: int = 0
    corrupt: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (dropped, kept)
    conflicts: list[str] = field(default_factory=list)  # same bytes under two classes: both dropped
    tiny: list[str] = field(default_factory=list)
    per_class: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "kept": self.kept,
            "corrupt": self.corrupt,
            "duplicates": [list(d) for d in self.duplicates],
            "conflicts": self.conflicts,
            "tiny": self.tiny,
            "per_class": self.per_class,
        }


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _probe(path: Path) -> tuple[int, int] | None:
    """Full decode (not just `verify`): truncated JPEGs fail here. Size after EXIF rotation."""
    try:
        im = load_rgb(path)
        im.load()
        return im.size
    except (ImageError, OSError):
        return None


def scan_image_folder(root: Path, class_dirs: tuple[str, ...] = CLASS_DIRS, min_side: int = 32) -> tuple[list[ImageRecord], ScanReport]:
    """One sub-folder per class. Drops undecodable files, tiny images, byte-identical duplicates
    (the first in sorted order is kept) and content that appears under two classes (label conflict)."""
    root = Path(root)
    missing = [c for c in class_dirs if not (root / c).is_dir()]
    if missing:
        raise FileNotFoundError(f"{root} lacks class folders: {missing}")
    report = ScanReport()
    by_hash: dict[str, ImageRecord] = {}
    conflicted: set[str] = set()
    for label, cls in enumerate(class_dirs):
        for path in sorted(p for p in (root / cls).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS):
            size = _probe(path)
            if size is None:
                report.corrupt.append(str(path))
                continue
            if min(size) < min_side:
                report.tiny.append(str(path))
                continue
            digest = _digest(path)
            if digest in by_hash:
                first = by_hash[digest]
                if first.label != label:
                    conflicted.add(digest)
                    report.conflicts += [str(first.path), str(path)]
                else:
                    report.duplicates.append((str(path), str(first.path)))
                continue
            by_hash[digest] = ImageRecord(path, label, digest, *size)
    records = [r for h, r in by_hash.items() if h not in conflicted]
    records.sort(key=lambda r: (r.label, str(r.path)))
    report.kept = len(records)
    report.per_class = {cls: sum(r.label == i for r in records) for i, cls in enumerate(class_dirs)}
    for kind in ("corrupt", "tiny", "conflicts"):
        if getattr(report, kind):
            log.warning("dropped %d %s images", len(getattr(report, kind)), kind)
    return records, report


def scan_image_folders(roots: list[Path]) -> tuple[list[ImageRecord], dict[str, dict]]:
    """Several ImageFolder roots as one training set, in the order given (records of each root sorted
    as `scan_image_folder` sorts them); content found in an earlier root is dropped from later ones."""
    records: list[ImageRecord] = []
    reports: dict[str, dict] = {}
    seen: set[str] = set()
    for root in roots:
        recs, report = scan_image_folder(Path(root))
        dup = [r for r in recs if r.sha256 in seen]
        if dup:
            log.warning("%d photos of %s already in an earlier folder: dropped", len(dup), root)
        recs = [r for r in recs if r.sha256 not in seen]
        seen.update(r.sha256 for r in recs)
        records += recs
        reports[str(root)] = {**report.as_dict(), "kept": len(recs), "cross_folder_duplicates": [str(r.path) for r in dup]}
    return records, reports


def indices_under(records: list[ImageRecord], root: Path) -> np.ndarray:
    """Positions of the records whose photo lies under `root`: the 169 of the cross-check (train on the rest)."""
    top = Path(root).resolve()
    return np.array([i for i, r in enumerate(records) if top in r.path.resolve().parents], dtype=int)


def stratified_kfold(labels: list[int] | np.ndarray, k: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Deterministic stratified folds (same labels + seed → same folds)."""
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels)
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(tr, va) for tr, va in skf.split(np.zeros(len(labels)), labels)]


# ---------------------------------------------------------------- detection sets


@dataclass(frozen=True)
class DetItem:
    image: Path
    boxes: tuple[tuple[float, float, float, float], ...]  # normalised cx, cy, w, h
    classes: tuple[int, ...] = ()  # one class id per box; empty = every box is class 0 `damage`


def scan_yolo_dataset(root: Path, min_side: int = 32) -> tuple[list[DetItem], dict]:
    """`root/images` + `root/labels` (YOLO txt). Every box becomes class 0 `damage`.
    Drops undecodable/tiny images, duplicates by content, and malformed label lines."""
    root = Path(root)
    items: list[DetItem] = []
    seen: set[str] = set()
    report = {"corrupt": [], "duplicates": [], "tiny": [], "bad_lines": 0, "no_label": 0}
    for img in sorted(p for p in (root / "images").rglob("*") if p.suffix.lower() in IMAGE_EXTS):
        size = _probe(img)
        if size is None:
            report["corrupt"].append(str(img))
            continue
        if min(size) < min_side:
            report["tiny"].append(str(img))
            continue
        digest = _digest(img)
        if digest in seen:
            report["duplicates"].append(str(img))
            continue
        seen.add(digest)
        rel = img.relative_to(root / "images").with_suffix(".txt")
        label_file = root / "labels" / rel
        boxes = []
        if label_file.exists():
            for line in label_file.read_text().splitlines():
                parts = line.split()
                if not parts:
                    continue
                try:
                    cx, cy, w, h = (float(v) for v in parts[1:5])
                except (ValueError, IndexError):
                    report["bad_lines"] += 1
                    continue
                if len(parts) != 5 or not (0 <= cx <= 1 and 0 <= cy <= 1 and 0 < w <= 1 and 0 < h <= 1):
                    report["bad_lines"] += 1
                    continue
                boxes.append((cx, cy, w, h))
        else:
            report["no_label"] += 1
        items.append(DetItem(img, tuple(boxes)))
    report["kept"] = len(items)
    return items, report


def holdout_split(n: int, frac: float = 0.2, seed: int = 0) -> tuple[list[int], list[int]]:
    """Fixed seeded (train, holdout) index split."""
    idx = list(range(n))
    random.Random(seed).shuffle(idx)
    n_hold = max(1, round(n * frac))
    return sorted(idx[n_hold:]), sorted(idx[:n_hold])


def coco_items(ann_json: Path, image_dir: Path) -> list[DetItem]:
    """COCO boxes → normalised single-class items (categories collapse to `damage`)."""
    data = json.loads(Path(ann_json).read_text())
    images = {im["id"]: im for im in data["images"]}
    boxes: dict[int, list] = {i: [] for i in images}
    for ann in data["annotations"]:
        im = images.get(ann["image_id"])
        if im is None or ann.get("iscrowd", 0):
            continue
        x, y, w, h = ann["bbox"]
        W, H = im["width"], im["height"]
        if w <= 1 or h <= 1:
            continue
        boxes[ann["image_id"]].append(((x + w / 2) / W, (y + h / 2) / H, w / W, h / H))
    out = []
    for iid, im in sorted(images.items()):
        p = Path(image_dir) / im["file_name"]
        if p.exists():
            out.append(DetItem(p, tuple(tuple(min(max(v, 0.0), 1.0) for v in b) for b in boxes[iid])))
    return out


def write_yolo_view(items: list[DetItem], out_dir: Path, split: str) -> Path:
    """Materialise a YOLO folder of *symlinks* to the original images + label txts (no copies)."""
    img_dir, lab_dir = Path(out_dir) / "images" / split, Path(out_dir) / "labels" / split
    img_dir.mkdir(parents=True, exist_ok=True)
    lab_dir.mkdir(parents=True, exist_ok=True)
    for i, it in enumerate(items):
        stem = f"{i:05d}_{it.image.stem}"
        link = img_dir / (stem + it.image.suffix.lower())
        if not link.exists():
            link.symlink_to(it.image.resolve())
        classes = it.classes or (0,) * len(it.boxes)
        lines = (f"{c} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n" for c, (cx, cy, w, h) in zip(classes, it.boxes, strict=True))
        (lab_dir / (stem + ".txt")).write_text("".join(lines))
    return img_dir


LENSOR_TAGS = ("dent", "scratch", "broken", "moderate_or_severe", "severe")


def lensor_damage_tags(root: Path, split: str = "train") -> tuple[list[ImageRecord], np.ndarray]:
    """Image-level damage tags from lensor's COCO boxes (multi-hot over `LENSOR_TAGS`).

    Lensor's close-ups teach what dents and broken parts look like; the classifiers use them as an
    auxiliary task (never as 6-class training photos: they show no view and no "normal" car).
    """
    root = Path(root)
    data = json.loads((root / "annotations" / f"instances_{split}.json").read_text())
    names = {c["id"]: c["name"] for c in data["categories"]}
    tags: dict[int, set[str]] = {im["id"]: set() for im in data["images"]}
    for ann in data["annotations"]:
        severity, _, kind = names[ann["category_id"]].partition("-")
        if kind not in LENSOR_TAGS:
            continue
        tags[ann["image_id"]].add(kind)
        if severity in {"moderate", "severe"}:
            tags[ann["image_id"]].add("moderate_or_severe")
        if severity == "severe":
            tags[ann["image_id"]].add("severe")
    records, targets = [], []
    for im in data["images"]:
        path = root / "images" / split / im["file_name"]
        if not path.exists() or not tags[im["id"]]:
            continue
        records.append(ImageRecord(path=path, label=-1, sha256=_digest(path), width=im.get("width", 0), height=im.get("height", 0)))
        targets.append([float(t in tags[im["id"]]) for t in LENSOR_TAGS])
    return records, np.asarray(targets, dtype=np.float32)


def damage_boxes_by_name(root: Path | None = None) -> dict[str, tuple[tuple[float, float, float, float], ...]]:
    """seed-yolo's damage boxes keyed by the 6-class file name (`01c876bc-FC_176.jpg` → `FC_176.jpg`).

    Used only to draw training crops around the damage of a training photo; evaluation never reads them.
    """
    root = Path(root) if root else data_dir() / "detection" / "seed-yolo"
    out: dict[str, tuple[tuple[float, float, float, float], ...]] = {}
    for label in sorted((root / "labels").glob("*.txt")):
        boxes = []
        for line in label.read_text().splitlines():
            parts = line.split()
            if len(parts) == 5:
                boxes.append(tuple(float(v) for v in parts[1:5]))
        if boxes:
            out[label.stem.split("-", 1)[-1] + ".jpg"] = tuple(boxes)  # type: ignore[arg-type]
    return out


def damage_crop(image: Image.Image, box: tuple[float, float, float, float], rng: random.Random | None = None) -> Image.Image:
    """A crop around one normalised (cx, cy, w, h) box, enlarged 1.4–2.5× so some context stays."""
    rng = rng or random
    w, h = image.size
    cx, cy, bw, bh = box[0] * w, box[1] * h, box[2] * w, box[3] * h
    grow = rng.uniform(1.4, 2.5)
    side_w, side_h = max(bw * grow, 0.25 * w), max(bh * grow, 0.25 * h)
    side_w, side_h = max(side_w, 0.7 * side_h), max(side_h, 0.7 * side_w)  # keep the aspect ratio near square
    x0 = min(max(0.0, cx - side_w / 2), max(0.0, w - side_w))
    y0 = min(max(0.0, cy - side_h / 2), max(0.0, h - side_h))
    return image.crop((round(x0), round(y0), round(min(w, x0 + side_w)), round(min(h, y0 + side_h))))
