#!/usr/bin/env python
"""Re-score a cached-recipe CV run from its fold checkpoints: the mirrored eval view, or another test size.

Written first to recover `oof_mirror_logits` for runs made before `train classify` wrote them: their
fold checkpoints and stem cache hold everything needed. Each fold's model is loaded and run on its own
validation photos, eval view (checked against the run's recorded logits) and mirror view; the
cross-check model (trained on `-more` only) on the 169. Minutes, no training.

`--size S` scores both views at S px instead of the run's own size: the frozen stem is recomputed
from the photos at S (the trained layers end in global pooling, so any size runs), which asks
whether testing larger than the training crops helps (FixRes). Pass the run's own preset, options
and settings so the stem cache and the grouped folds are the ones the run used:

    python scripts/oof_rescore.py fast runs/v13/lite1-s4/fast --cache runs/v13/lite1-s4-cache \\
        --option variant=1 --option split=4 --check docs/models/runs/v2/lite1-v4-cv-oof.json \\
        --out docs/models/runs/v2/lite1-v4-mirror-oof.json

The output reads like a run's `-oof.json` in `scripts/oof_ensemble.py` (with `--mirror`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer

from damagelens.cli.models import _apply_options, _apply_overrides  # the CLI's own --option / --set parsing, not a copy
from damagelens.settings import get_settings
from damagelens.training import classify as cached_recipe
from damagelens.training.data import indices_under, scan_image_folders
from damagelens.training.grouping import grouped_splits
from damagelens.training.presets import PRESETS, preset_entry


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return round(float((logits.argmax(1) == labels).mean()), 4)


def main(
    preset_name: Annotated[str, typer.Argument(help="the run's preset (fast | accurate | …)")],
    run: Annotated[Path, typer.Argument(help="the run folder holding cv/fold<k>/checkpoint.pt (<out>/<preset>)")],
    cache: Annotated[Path, typer.Option(help="the run's --cache folder (stem cache and phash.json)")],
    out: Annotated[Path, typer.Option(help="write files, folds, oof_logits and oof_mirror_logits here")],
    option: Annotated[list[str] | None, typer.Option("--option", help="the run's --option key=value pairs")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="the run's --set key=value pairs (its cache)")] = None,
    data: Annotated[list[Path] | None, typer.Option(help="the run's --data folders; default both 6-class folders")] = None,
    folds: int = 5,
    seed: int = 0,
    group_distance: int = 8,
    check: Annotated[Path | None, typer.Option(help="the run's -oof.json: its eval logits must be reproduced")] = None,
    size: Annotated[int | None, typer.Option(help="test size in px; default the run's own (its stem cache)")] = None,
) -> None:
    from damagelens.vision.architectures import build_architecture

    preset = PRESETS[preset_name]
    options = _apply_options(preset.options, option or [])
    cfg = _apply_overrides(replace(preset.config, seed=seed), set_ or [])  # n_aug, aug_strength, seed key the stem cache
    entry = preset_entry(preset_name, replace(preset, config=cfg, options=options))
    base = Path(get_settings().data_dir)
    roots = list(data or [base / "car-damage-6class", base / "car-damage-6class-more"])
    records, _ = scan_image_folders(roots)
    splits, _ = grouped_splits(records, cache, folds, seed, group_distance)
    model = build_architecture(entry, pretrained_backbone=True).float().eval()  # the stem matters only if its cache is missing
    if size is not None and size != entry.input_size:  # only the two eval views at the new size (the size and n_aug key its caches)
        entry, cfg = entry.model_copy(update={"input_size": size}), replace(cfg, n_aug=0)
    stem = cached_recipe.build_stem_cache(model, entry, records, cfg, cache)
    net, stem = cached_recipe.training_view(model, entry, records, cfg, stem, cache)
    logits, mirror = np.zeros((len(records), len(entry.labels)), np.float32), np.zeros((len(records), len(entry.labels)), np.float32)
    fold_metrics = []
    for k, (_train, val) in enumerate(splits):
        state = torch.load(run / "cv" / f"fold{k}" / "checkpoint.pt", weights_only=False)["model"]
        net.load_state_dict(state)
        logits[val] = cached_recipe.logits_cached(net, stem, val).numpy()
        mirror[val] = cached_recipe.logits_cached(net, stem, val, view=1).numpy()
        fold_metrics.append({"n": len(val)})
    labels = np.array([r.label for r in records])
    result = {
        "files": [r.path.name for r in records],
        "folds": fold_metrics,
        "oof_logits": logits.round(4).tolist(),
        "oof_mirror_logits": mirror.round(4).tolist(),
    }
    summary = {"size": size or entry.input_size, "eval_accuracy": _accuracy(logits, labels), "mirror_accuracy": _accuracy(mirror, labels)}
    if (run / "cv" / "cross-check" / "checkpoint.pt").exists():  # trained on every photo outside the first --data folder
        check_idx = indices_under(records, roots[0])
        net.load_state_dict(torch.load(run / "cv" / "cross-check" / "checkpoint.pt", weights_only=False)["model"])
        cc, cc_mirror = (cached_recipe.logits_cached(net, stem, check_idx, view=v).numpy() for v in (0, 1))
        result["cross_check"] = {
            "n": len(check_idx), "train_n": len(records) - len(check_idx), "labels_true": labels[check_idx].tolist(),
            "logits": cc.round(4).tolist(), "mirror_logits": cc_mirror.round(4).tolist(),
        }  # fmt: skip
        summary |= {"cross_check_accuracy": _accuracy(cc, labels[check_idx]),
                    "cross_check_tta_accuracy": cached_recipe.tta_accuracy(cc, cc_mirror, labels[check_idx])}  # fmt: skip
    if check is not None:
        recorded = json.loads(check.read_text())
        gaps = {"oof": float(np.abs(np.asarray(recorded["oof_logits"]) - logits.round(4)).max())}
        if "cross_check" in recorded and "cross_check" in result:
            cc_recorded = np.asarray(recorded["cross_check"]["logits"])
            gaps["cross-check"] = float(np.abs(cc_recorded - np.asarray(result["cross_check"]["logits"])).max())
        if max(gaps.values()) > 1e-3:
            raise typer.BadParameter(f"eval logits differ from {check} by {gaps}: not the same run, cache, options or size")
    out.write_text(json.dumps(result, separators=(",", ":")) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    typer.run(main)
