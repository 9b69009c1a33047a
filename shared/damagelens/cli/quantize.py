"""`damagelens quantize`: INT8 ONNX Runtime graphs of the classifiers, and their grouped-CV judgement.

`classify` quantises a registry classifier (calibrated on training photos) and prints FP32-vs-INT8
latency and agreement; `cv` retrains every grouped fold with the model's recipe and scores FP32 and
INT8 on the held-out photos (docs/models/int8.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

quantize_app = typer.Typer(no_args_is_help=True, help="INT8 (ONNX Runtime static quantisation) of the classifiers.")

METHOD_HELP = "calibration: minmax | percentile | entropy"


def _settings():
    from damagelens.settings import get_settings

    return get_settings()


def _default_roots(data: list[Path] | None) -> list[Path]:
    base = Path(_settings().data_dir)
    return list(data or [base / "car-damage-6class", base / "car-damage-6class-more"])


@quantize_app.command("classify")
def quantize_classify(
    model: Annotated[str, typer.Option(help="registry classifier, e.g. fast | accurate")] = "fast",
    calib: Annotated[int, typer.Option(help="calibration photos, a seeded sample of the training folders")] = 128,
    check: Annotated[int, typer.Option(help="other training photos on which FP32 and INT8 are compared (agreement, latency)")] = 200,
    method: Annotated[str, typer.Option(help=METHOD_HELP)] = "minmax",
    data: Annotated[list[Path] | None, typer.Option(help="ImageFolder root(s); default the two 6-class folders")] = None,
    out: Annotated[Path, typer.Option(help="cache folder for the FP32 and INT8 graphs (`onnx/` inside)")] = Path("runs/int8"),
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Quantise the served model's ONNX export; prints a summary JSON last.

    The check photos are training photos of the served model, so the agreement here says how close INT8
    stays to FP32, not how accurate either is: accuracy is judged by `quantize cv`."""
    import numpy as np

    from damagelens.registry.entries import load_registry
    from damagelens.vision import quantize
    from damagelens.vision.onnx_backend import ensure_onnx

    settings = _settings()
    entry = load_registry(Path(settings.registry_path)).get(model)
    if entry.task != "classify":
        raise typer.BadParameter(f"{model} is a {entry.task} model; only classifiers are quantised here")
    try:
        calib_photos, check_photos = quantize.calibration_photos(_default_roots(data), calib, seed, exclude=check)
    except FileNotFoundError as exc:
        raise typer.BadParameter(str(exc)) from None
    fp32_path = ensure_onnx(entry, Path(out))
    int8_path = quantize.quantize_classifier(
        fp32_path, quantize.int8_path_for(fp32_path, calib_photos, method), entry, calib_photos, method=method
    )
    run = quantize.compare_on_inputs(quantize.session(fp32_path), quantize.session(int8_path), quantize.photo_inputs(check_photos, entry))
    fp32_ms, int8_ms = float(np.median(run["fp32_ms"])), float(np.median(run["int8_ms"]))
    summary = {
        "model": model,
        "fp32": str(fp32_path),
        "int8": str(int8_path),
        "fp32_bytes": fp32_path.stat().st_size,
        "int8_bytes": int8_path.stat().st_size,
        "calibration_photos": len(calib_photos),
        "method": method,
        **quantize.agreement(run["fp32_logits"], run["int8_logits"]),
        "fp32_median_ms": round(fp32_ms, 3),
        "int8_median_ms": round(int8_ms, 3),
        "speedup": round(fp32_ms / int8_ms, 3) if int8_ms else 0.0,
    }
    typer.echo(
        f"{model}: FP32 {fp32_ms:.2f} ms, INT8 {int8_ms:.2f} ms (batch 1, 1 thread); top-1 agreement {summary['top1_agreement']:.3f}"
    )
    typer.echo(json.dumps(summary, separators=(",", ":")))


@quantize_app.command("cv")
def quantize_cv(
    model: Annotated[str, typer.Option(help="fast | accurate (the training preset)")] = "fast",
    calib: Annotated[int, typer.Option(help="calibration photos per fold, drawn from that fold's training photos")] = 128,
    method: Annotated[list[str] | None, typer.Option(help=f"{METHOD_HELP}; repeatable (default minmax)")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a training setting, key=value (as `train classify`)")] = None,
    data: Annotated[list[Path] | None, typer.Option(help="ImageFolder root(s); default the two 6-class folders")] = None,
    folds: Annotated[int, typer.Option()] = 5,
    out: Annotated[Path, typer.Option(help="run folder (stem cache, fold checkpoints, ONNX graphs)")] = Path("runs/int8"),
    report: Annotated[Path | None, typer.Option(help="also write the report JSON here")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    rescore: Annotated[
        bool, typer.Option(help="re-quantise and score the fold graphs a previous run saved under --out (no retraining)")
    ] = False,
) -> None:
    """Grouped k-fold CV with the preset's recipe; FP32 vs INT8 accuracy, macro-F1 and latency on every held-out fold."""
    from dataclasses import replace

    from damagelens.cli.models import _apply_overrides, _threads
    from damagelens.training.data import scan_image_folders
    from damagelens.training.int8_cv import int8_cross_validate, rescore_saved_folds
    from damagelens.training.presets import PRESETS, preset_entry

    if model not in PRESETS or PRESETS[model].recipe != "cached":
        raise typer.BadParameter(f"--model: one of {sorted(n for n, p in PRESETS.items() if p.recipe == 'cached')}")
    _threads("cpu")
    preset = PRESETS[model]
    cfg = _apply_overrides(replace(preset.config, seed=seed), set_ or [])
    preset = replace(preset, config=cfg)
    records, _ = scan_image_folders(_default_roots(data))
    run = Path(out) / model
    methods = tuple(method or ["minmax"])
    if rescore:
        result = rescore_saved_folds(
            preset_entry(model, preset), records, run, run / "cache", folds=folds, seed=seed, calib=calib, methods=methods
        )
    else:
        result = int8_cross_validate(
            preset_entry(model, preset),
            records,
            cfg,
            out_dir=run,
            cache_dir=run / "cache",
            folds=folds,
            seed=seed,
            calib=calib,
            methods=methods,
        )
    text = json.dumps(result, indent=2)
    (run / ("int8-rescore.json" if rescore else "int8-cv.json")).write_text(text)
    if report is not None:
        Path(report).parent.mkdir(parents=True, exist_ok=True)
        Path(report).write_text(text + "\n")
    for key in [k for k in result if k.startswith("int8_")]:
        r = result[key]
        typer.echo(
            f"{model} {key}: accuracy {result['fp32']['accuracy']:.4f} -> {r['accuracy']:.4f} ({-r['accuracy_drop_points']:+.2f} pt), "
            f"macro-F1 {result['fp32']['macro_f1']:.4f} -> {r['macro_f1']:.4f}, "
            f"{result['fp32']['median_ms']:.2f} -> {r['median_ms']:.2f} ms, agreement {r['top1_agreement']:.4f}"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(quantize_app, name="quantize")
