"""Evaluation through the registry: entry → build_architecture → strict safetensors → FP32 on CPU."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from damagelens.registry import ModelEntry
from damagelens.training.data import CLASS_DIRS, IMAGE_EXTS, load_rgb, scan_image_folder


def load_entry_model(entry: ModelEntry, device: str = "cpu") -> nn.Module:
    """The service's own loader (`damagelens.vision.loading.load_classifier`), FP32."""
    from damagelens.vision.loading import load_classifier

    return load_classifier(entry, torch.device(device), half=False)


@torch.no_grad()
def evaluate_classifier_folder(
    entry: ModelEntry, folder: Path, device: str = "cpu", model: nn.Module | None = None, class_dirs: tuple[str, ...] = CLASS_DIRS
) -> dict:
    """`folder` holds one sub-folder per class (`class_dirs`, in label order: F_Breakage … R_Normal for
    the 6-class models, minor|moderate|severe for severity). Prediction uses exactly the service
    preprocessing (`damagelens.vision.preprocess.to_input_tensor`)."""
    from damagelens.training.classify import classification_metrics
    from damagelens.vision.preprocess import to_input_tensor

    records, report = scan_image_folder(Path(folder), class_dirs, min_side=1)
    model = model if model is not None else load_entry_model(entry, device)
    started = time.perf_counter()
    y_true, y_pred = [], []
    for rec in tqdm(records, desc=f"evaluate {entry.name}", leave=False):
        x = to_input_tensor(load_rgb(rec.path), entry).to(device)
        y_pred.append(int(model(x).argmax(1)))
        y_true.append(rec.label)
    out = classification_metrics(np.array(y_true, dtype=int), np.array(y_pred, dtype=int), entry.labels)
    out["model"] = entry.name
    out["seconds"] = round(time.perf_counter() - started, 2)
    out["skipped"] = {k: len(v) for k, v in report.as_dict().items() if isinstance(v, list)}
    return out


@torch.no_grad()
def evaluate_damaged_as_normal(entry: ModelEntry, folder: Path, device: str = "cpu", model: nn.Module | None = None) -> dict:
    """How often a 6-class model calls a *damaged* car "… Normal": every image under `folder` (any depth)
    shows a damaged car, e.g. `damage-severity/val` (another origin than the training photos). Reports the
    share called Normal, the share called Normal *without* the review flag (what would pass unchecked),
    per first-level sub-folder too; calibrated probabilities and the flag exactly as the service computes them."""
    from damagelens.vision.classify import result_from_logits
    from damagelens.vision.preprocess import to_input_tensor

    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise FileNotFoundError(f"no images under {folder}")
    model = model if model is not None else load_entry_model(entry, device)
    started = time.perf_counter()
    labels: dict[str, int] = {}
    groups: dict[str, dict[str, int]] = {}
    normal = unflagged = flagged = 0
    for path in tqdm(files, desc=f"damaged-as-normal {entry.name}", leave=False):
        x = to_input_tensor(load_rgb(path), entry).to(device)
        result = result_from_logits(model(x)[0].float(), entry)
        is_normal = result.label.endswith("Normal")
        labels[result.label] = labels.get(result.label, 0) + 1
        normal += is_normal
        unflagged += is_normal and not result.review
        flagged += result.review
        parts = path.relative_to(folder).parts
        group = parts[0] if len(parts) > 1 else "."
        g = groups.setdefault(group, {"n": 0, "called_normal": 0})
        g["n"] += 1
        g["called_normal"] += is_normal
    n = len(files)
    return {
        "model": entry.name,
        "model_version": entry.version,
        "n": n,
        "called_normal": round(normal / n, 4),
        "called_normal_not_flagged": round(unflagged / n, 4),
        "flagged_for_review": round(flagged / n, 4),
        "labels": dict(sorted(labels.items())),
        "per_folder": {k: {"n": v["n"], "called_normal": round(v["called_normal"] / v["n"], 4)} for k, v in sorted(groups.items())},
        "seconds": round(time.perf_counter() - started, 2),
    }
