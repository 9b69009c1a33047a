"""Evaluation through the registry: entry → build_architecture → strict safetensors → FP32 on CPU."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from damagelens.registry import ModelEntry
from damagelens.training.data import CLASS_DIRS, load_rgb, scan_image_folder


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
