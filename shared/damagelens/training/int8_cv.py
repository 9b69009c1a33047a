"""Grouped-CV judgement of INT8 quantisation: FP32 vs INT8 ONNX Runtime on held-out folds.

For every fold of the model's own grouped CV (same records, near-copy groups and seeded folds as
`damagelens train classify`), the fold model is trained with the model's recipe
(`classify.cross_validate`), exported to ONNX, quantised with calibration photos drawn from that
fold's *training* photos only, and both graphs score the held-out photos — decoded and
preprocessed the service's way, batch 1, one thread, interleaved so load noise hits both alike.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from torch import nn

from damagelens.registry import ModelEntry
from damagelens.training.classify import TrainConfig, classification_metrics, cross_validate, per_class_recall
from damagelens.training.data import ImageRecord
from damagelens.training.export import export_onnx
from damagelens.training.grouping import grouped_splits
from damagelens.vision import quantize

log = logging.getLogger(__name__)


class FoldQuantiser:
    """The `fold_hook`: export, quantise (per calibration method) and score one fold's model."""

    def __init__(self, entry: ModelEntry, records: list[ImageRecord], out_dir: Path, calib: int, methods: tuple[str, ...], seed: int):
        self.entry, self.records, self.out_dir = entry, records, Path(out_dir)
        self.calib, self.methods, self.seed = calib, methods, seed
        n, c = len(records), len(entry.labels)
        self.fp32 = np.zeros((n, c), dtype=np.float32)
        self.int8 = {m: np.zeros((n, c), dtype=np.float32) for m in methods}
        self.ms: dict[str, list[float]] = {"fp32": [], **{m: [] for m in methods}}
        self.folds: list[dict] = []
        self.done = np.zeros(n, dtype=bool)

    def __call__(self, k: int, model: nn.Module, train_idx: np.ndarray, val_idx: np.ndarray) -> None:
        self.score(k, export_onnx(model, self.entry, self.out_dir / f"fold{k}" / "fp32.onnx"), train_idx, val_idx)

    def score(self, k: int, fp32_path: Path, train_idx: np.ndarray, val_idx: np.ndarray) -> None:
        """Quantise one fold's FP32 graph (calibrated on its training photos) and score both on its held-out photos."""
        started = time.perf_counter()
        fold_dir = self.out_dir / f"fold{k}"
        rng = np.random.default_rng(self.seed + k)
        calib_idx = rng.choice(train_idx, size=min(self.calib, len(train_idx)), replace=False)
        calib_photos = [self.records[i].path for i in calib_idx]
        inputs = list(quantize.photo_inputs([self.records[i].path for i in val_idx], self.entry))
        fp32 = quantize.session(fp32_path)
        row: dict = {"fold": k + 1, "n": len(val_idx), "calibration_photos": len(calib_photos)}
        labels = np.array([self.records[i].label for i in val_idx])
        for method in self.methods:
            int8_path = quantize.quantize_classifier(fp32_path, fold_dir / f"int8-{method}.onnx", self.entry, calib_photos, method=method)
            run = quantize.compare_on_inputs(fp32, quantize.session(int8_path), inputs)
            self.fp32[val_idx] = run["fp32_logits"]
            self.int8[method][val_idx] = run["int8_logits"]
            self.ms["fp32"] += run["fp32_ms"]
            self.ms[method] += run["int8_ms"]
            a = classification_metrics(labels, run["fp32_logits"].argmax(1), self.entry.labels)
            b = classification_metrics(labels, run["int8_logits"].argmax(1), self.entry.labels)
            row["fp32"] = {"accuracy": a["accuracy"], "macro_f1": a["macro_f1"], "median_ms": round(float(np.median(run["fp32_ms"])), 3)}
            row[method] = {
                "accuracy": b["accuracy"],
                "macro_f1": b["macro_f1"],
                "median_ms": round(float(np.median(run["int8_ms"])), 3),
                **quantize.agreement(run["fp32_logits"], run["int8_logits"]),
            }
        row["seconds"] = round(time.perf_counter() - started, 1)
        self.folds.append(row)
        self.done[val_idx] = True
        log.info("int8 fold %d: %s", k + 1, row)
        # after every fold: a long CV stopped early still leaves the folds it finished
        all_labels = np.array([r.label for r in self.records])
        (self.out_dir / "partial.json").write_text(json.dumps(self.report(all_labels), indent=2))

    def report(self, labels: np.ndarray) -> dict:
        """Pooled out-of-fold metrics of FP32 and each INT8 variant (over the folds done so far), differences, latencies."""
        done = self.done
        labels = labels[done]
        out: dict = {"folds": self.folds, "photos_scored": int(done.sum())}
        base = classification_metrics(labels, self.fp32[done].argmax(1), self.entry.labels)
        base["per_class_recall"] = per_class_recall(base["confusion"], self.entry.labels)
        base["median_ms"] = round(float(np.median(self.ms["fp32"])), 3)
        out["fp32"] = base
        for method in self.methods:
            m = classification_metrics(labels, self.int8[method][done].argmax(1), self.entry.labels)
            m["per_class_recall"] = per_class_recall(m["confusion"], self.entry.labels)
            m["median_ms"] = round(float(np.median(self.ms[method])), 3)
            m.update(quantize.agreement(self.fp32[done], self.int8[method][done]))
            m["accuracy_drop_points"] = round(100 * (base["accuracy"] - m["accuracy"]), 2)
            m["macro_f1_drop_points"] = round(100 * (base["macro_f1"] - m["macro_f1"]), 2)
            m["speedup"] = round(base["median_ms"] / m["median_ms"], 3) if m["median_ms"] else 0.0
            m["fold_accuracy_drop_points"] = [round(100 * (f["fp32"]["accuracy"] - f[method]["accuracy"]), 2) for f in self.folds]
            out[f"int8_{method}"] = m
        return out


def int8_cross_validate(
    entry: ModelEntry,
    records: list[ImageRecord],
    cfg: TrainConfig,
    out_dir: Path,
    cache_dir: Path,
    folds: int = 5,
    seed: int = 0,
    calib: int = 128,
    methods: tuple[str, ...] = ("minmax",),
    max_distance: int = 8,
) -> dict:
    """Grouped k-fold CV of the cached recipe with an FP32-vs-INT8 ONNX Runtime comparison on every held-out fold."""
    started = time.perf_counter()
    splits, groups_info = grouped_splits(records, cache_dir, folds, seed, max_distance)
    hook = FoldQuantiser(entry, records, out_dir, calib, methods, seed)
    cv = cross_validate(
        entry,
        records,
        cfg,
        folds=folds,
        cache_dir=cache_dir,
        out_dir=Path(out_dir) / "train",
        fold_seed=seed,
        splits=splits,
        fold_hook=hook,
    )
    labels = np.array([r.label for r in records])
    report = {
        "model": entry.name,
        "n": len(records),
        "grouping": groups_info,
        "recipe_cv": {k: cv[k] for k in ("accuracy", "macro_f1", "served_view_accuracy", "fold_accuracy_std") if k in cv},
        **hook.report(labels),
        "quantisation": {
            "format": "QDQ",
            "per_channel": True,
            "activations": "uint8",
            "weights": "int8",
            "op_types": list(quantize.QUANTIZED_OPS),
            "calibration_photos_per_fold": calib,
            "calibration_source": "a seeded sample of the fold's training photos",
            "methods": list(methods),
        },
        "latency": "median ms per photo, batch 1, 1 ONNX Runtime thread, FP32 and INT8 interleaved in one process",
        "config": asdict(cfg),
        "seconds": round(time.perf_counter() - started, 1),
    }
    return report


def rescore_saved_folds(
    entry: ModelEntry,
    records: list[ImageRecord],
    out_dir: Path,
    cache_dir: Path,
    folds: int = 5,
    seed: int = 0,
    calib: int = 128,
    methods: tuple[str, ...] = ("minmax",),
    max_distance: int = 8,
) -> dict:
    """Quantise and score again the fold graphs a previous `int8_cross_validate` saved (`fold<k>/fp32.onnx`),
    e.g. with another calibration method, without retraining: same folds, same calibration photos."""
    started = time.perf_counter()
    splits, groups_info = grouped_splits(records, cache_dir, folds, seed, max_distance)
    hook = FoldQuantiser(entry, records, out_dir, calib, methods, seed)
    for k, (tr, va) in enumerate(splits):
        fp32_path = Path(out_dir) / f"fold{k}" / "fp32.onnx"
        if not fp32_path.exists():
            raise FileNotFoundError(f"{fp32_path} is missing: run the CV without --rescore first")
        hook.score(k, fp32_path, np.asarray(tr), np.asarray(va))
    labels = np.array([r.label for r in records])
    return {
        "model": entry.name,
        "n": len(records),
        "grouping": groups_info,
        "rescored_saved_folds": True,
        **hook.report(labels),
        "seconds": round(time.perf_counter() - started, 1),
    }
