"""`damagelens analyze`: the whole pipeline in-process, without Redis, storage or workers."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from damagelens.schemas import CAM_METHODS
from damagelens.settings import get_settings


def analyze(
    images: list[Path] = typer.Argument(..., exists=True, dir_okay=False, help="photos to analyse"),
    model: str = typer.Option(None, "--model", "-m", help="fast | accurate | registry name (default: DAMAGELENS_DEFAULT_MODEL)"),
    out: Path = typer.Option(None, "--out", "-o", help="folder for overlay, heatmap and detection images"),
    cam_method: str = typer.Option(None, help=f"{' | '.join(CAM_METHODS)} (default: DAMAGELENS_CAM_METHOD)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per image on stdout"),
) -> None:
    """Classify, explain and detect damage on each image."""
    from damagelens.imaging import ImageError, load_upright_rgb
    from damagelens.registry import load_registry
    from damagelens.vision.classify import classify_image
    from damagelens.vision.detector import Detector, draw_detections, to_jpeg
    from damagelens.vision.explain import Explainer
    from damagelens.vision.loading import load_classifier, resolve_device

    settings = get_settings()
    registry = load_registry(settings.registry_path)
    entry = registry.get(model or settings.default_model, task="classify")
    device = resolve_device(settings.device)
    classifier = load_classifier(entry, device)
    explainer = Explainer(load_classifier(entry, device, half=False), entry, cam_method or settings.cam_method)
    detector = Detector(registry.get(settings.detector_model, task="detect"), str(device), settings.detect_conf, settings.detect_imgsz)
    failures = 0
    for path in images:
        try:
            image = load_upright_rgb(path.read_bytes(), settings.max_pixels)
        except ImageError as exc:
            failures += 1
            typer.echo(
                json.dumps({"image": str(path), "error": {"code": exc.code, "message": exc.message}})
                if as_json
                else f"{path}: {exc.message}",
                err=not as_json,
            )
            continue
        result, speed = classify_image(classifier, entry, image)
        explanation, cam_speed = explainer(image)
        detections, det_speed = detector(image)
        record = {
            "image": str(path),
            "classification": result.model_dump(),
            "explanation": {"method": explanation.method, "target_label": explanation.target_label},
            "detection": {"detections": [d.model_dump() for d in detections], "total_detections": len(detections)},
            "speed_ms": {"classify": speed, "explain": cam_speed, "detect": det_speed},
        }
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            stem = out / path.stem
            Path(f"{stem}_overlay.jpg").write_bytes(explanation.overlay_jpeg())
            Path(f"{stem}_heatmap.png").write_bytes(explanation.heatmap_png())
            Path(f"{stem}_detection.jpg").write_bytes(to_jpeg(draw_detections(image, detections)))
            record["files"] = [f"{stem}_overlay.jpg", f"{stem}_heatmap.png", f"{stem}_detection.jpg"]
        if as_json:
            typer.echo(json.dumps(record))
        else:
            regions = f"{len(detections)} damage region(s)"
            typer.echo(f"{path}: {result.label} ({result.confidence:.1%}); {regions}; CAM target {explanation.target_label}")
    if failures:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(analyze)
